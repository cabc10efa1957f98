from pathlib import Path

import pytest
import yaml

from lazystitch.config import StitchConfig, load_config
from lazystitch.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "configs" / "example.yaml"
BASE = {
    "tiles": {"pattern": "t_{row}_{col}.tif"},
    "layout": {"grid": "2x2", "overlap": 0.1},
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
            {"layout": {"grid": "2x2", "overlap": 4, "flip_y": True}},
            r"layout: .*flip_y turn the positions of a CSV; a grid is numbered by --order",
        ),
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
    p.write_text("tiles:\n  pattern: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml line 3, column 1: .*flow sequence"):
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


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [
        ("20px", (20.0, 20.0)),
        (64, (64.0, 64.0)),
        ("0", (0.0, 0.0)),
        ("99%", (0.99, 0.99)),
        ("1px", (1.0, 1.0)),
    ],
)
def test_overlap_units(overlap, expected):
    cfg = load_config(None, {**BASE, "layout": {"grid": "2x2", "overlap": overlap}})
    assert cfg.layout.overlap == pytest.approx(expected)


@pytest.mark.parametrize(
    ("overlap", "message"),
    [
        ("1.0", r"ambiguous.*1px"),
        (1.0, r"ambiguous"),
        ("100%", r"no step"),
        ("150%", r"no step"),
        ("1.5", r"neither a fraction .* nor whole pixels"),
        ("10.5px", r"neither a fraction"),
        ("1,2,3", r"one value or two"),
    ],
)
def test_overlap_that_would_be_silently_wrong_is_refused(overlap, message):
    with pytest.raises(ConfigError, match=r"layout\.overlap: .*" + message):
        load_config(None, {**BASE, "layout": {"grid": "2x2", "overlap": overlap}})


def test_grid_needs_an_overlap():
    with pytest.raises(ConfigError, match=r"layout: 'grid' needs 'overlap'"):
        load_config(None, {**BASE, "layout": {"grid": "2x2"}})


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("tiles:\n  pattern: a_{row}_{col}.tif\nfusion:\n  blend: max\n  blend: linear\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml line 5, column 3: key 'blend' is given twice \(lines 4 and 5\)"
    ):
        load_config(p)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a YAML text file"),
        (b"- 1\n- 2\n", "mapping of sections"),
    ],
)
def test_a_config_that_is_no_yaml_mapping_names_the_file(tmp_path, content, message):
    p = tmp_path / "c.yaml"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"config file .*c\.yaml .*{message}"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"is a folder"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ({"memory_limit": "1KiB"}, r"cluster\.memory_limit: .*too small"),
        ({"memory_limit": "-1GiB"}, r"cluster\.memory_limit: .*too small"),
        ({"memory_limit": "lots"}, r"cluster\.memory_limit: .*like 4GiB"),
        ({"workers": 100_000}, r"cluster\.workers: .*per core"),
        (
            {"workers": 2, "scheduler": "tcp://127.0.0.1:8786"},
            r"workers cannot be set with an existing scheduler",
        ),
    ],
)
def test_absurd_cluster_settings_are_refused(cluster, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, {**BASE, "cluster": cluster})


@pytest.mark.parametrize("dataset", ["/", ".", "a//b", "../x", "", "g/."])
def test_dataset_names_that_hdf5_cannot_hold_are_refused(dataset):
    with pytest.raises(ConfigError, match=r"output\.dataset: "):
        load_config(None, {**BASE, "output": {"path": "o.h5", "dataset": dataset}})


@pytest.mark.parametrize("path", ["", ".", "..", "out/", "a/.."])
def test_output_paths_that_name_no_file_are_refused(path):
    with pytest.raises(ConfigError, match=r"output\.path: path must name a file"):
        load_config(None, {**BASE, "output": {"path": path}})


def test_labels_name_the_flags():
    with pytest.raises(ConfigError, match=r"--blend \(fusion\.blend\): Input should be"):
        load_config(
            None,
            {**BASE, "fusion": {"blend": "x"}},
            labels={"fusion.blend": "--blend (fusion.blend)"},
        )


def test_a_config_without_output_is_valid():
    cfg = load_config(None, {k: v for k, v in BASE.items() if k != "output"})
    assert cfg.output is None and cfg.layout.grid == (2, 2)
