from pathlib import Path

import pytest
import yaml

from lazystitch.config import StitchConfig, load_config
from lazystitch.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "configs" / "example.yaml"
BASE = {
    "tiles": {"pattern": "t_{row}_{col}.tif"},
    "layout": {"grid": "2x2"},
    "output": {"path": "o.h5"},
}


def _fields(model) -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        out.add(name)
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            out |= {f"{name}.{sub}" for sub in _fields(ann)}
    return out


def _commented_keys(text: str) -> set[str]:
    """Keys in the example, including ones shown commented out."""
    keys, section = set(), None
    for line in text.splitlines():
        stripped = line.lstrip("# ").rstrip()
        if not stripped or ":" not in stripped or stripped.startswith(("Run", "Check")):
            continue
        key = stripped.split(":", 1)[0]
        if not key.replace("_", "").isalnum():
            continue
        if not line.startswith((" ", "#  ", "# ")) or line.startswith(key):
            section = key
            keys.add(key)
        elif line.startswith("  ") or line.startswith("  #"):
            keys.add(f"{section}.{key}")
    return keys


def test_example_config_is_valid_and_documents_every_key():
    cfg = load_config(EXAMPLE)
    assert cfg.layout.grid == (4, 5)
    assert _fields(StitchConfig) <= _commented_keys(EXAMPLE.read_text())


def test_relative_paths_are_relative_to_the_config_file():
    cfg = load_config(EXAMPLE)
    assert cfg.output.path == EXAMPLE.parent / "../lazystitch-demo/mosaic-from-config.h5"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"fusion": {"blend": "median"}},
            r"fusion\.blend: Input should be 'linear', 'average', 'max', 'first' or 'last'",
        ),
        ({"fusion": {"blend": "linear", "sigma": 2}}, r"fusion\.sigma: unknown key"),
        ({"colour": 1}, r"colour: unknown key"),
        ({"layout": {"grid": "4 by 6"}}, r"layout\.grid: .*'4x6'"),
        ({"layout": {"grid": "0x3"}}, r"layout\.grid: .*at least 1x1"),
        ({"layout": {"grid": "2x2", "positions": "p.csv"}}, r"exactly one of 'grid'"),
        ({"layout": {"grid": "2x2", "overlap": "-3"}}, r"layout\.overlap: .*>= 0"),
        (
            {"output": {"path": "o.h5", "compression": "snappy"}},
            r"output\.compression: .*allowed: none, gzip",
        ),
        ({"output": {"path": "o.h5", "chunks": "0,5"}}, r"output\.chunks: .*positive"),
        ({"cluster": {"workers": 0}}, r"cluster\.workers: .*greater than or equal to 1"),
        ({"tiles": {"pattern": "t_{row}.tif"}}, r"tiles\.pattern: .*must contain"),
        ({"output": {}}, r"output\.path: required key is missing"),
    ],
)
def test_bad_values_name_the_key(patch, message):
    data = {**BASE, **patch}
    with pytest.raises(ConfigError, match=message):
        load_config(None, data)


def test_yaml_file_errors_name_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**BASE, "fusion": {"blend": "median"}}))
    with pytest.raises(ConfigError, match=r"in .*c\.yaml: fusion\.blend"):
        load_config(p)
    p.write_text("tiles: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_flags_override_and_grid_replaces_positions(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**BASE, "layout": {"positions": "p.csv"}}))
    cfg = load_config(
        p, {"layout": {"grid": "3x4", "overlap": "0.1,20"}, "fusion": {"blend": "max"}}
    )
    assert cfg.layout.grid == (3, 4) and cfg.layout.positions is None
    assert cfg.layout.overlap == (0.1, 20.0) and cfg.fusion.blend.value == "max"


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [("10%", (0.1, 0.1)), ("10%,20%", (0.1, 0.2)), ("0.15", (0.15, 0.15)), ("30,40", (30.0, 40.0))],
)
def test_overlap_forms(overlap, expected):
    cfg = load_config(None, {**BASE, "layout": {"grid": "2x2", "overlap": overlap}})
    assert cfg.layout.overlap == pytest.approx(expected)


def test_overlap_cannot_mix_percent_and_px():
    with pytest.raises(ConfigError, match="mixes percent"):
        load_config(None, {**BASE, "layout": {"grid": "2x2", "overlap": "10%,20"}})
