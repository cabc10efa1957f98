"""The global solve: consistent links, rejected links, labels and the stage model."""

import numpy as np
import pytest

from lazystitch.registration import PairShift, solve_positions


def _grid(rows, cols, step=(90.0, 110.0)):
    keys = [(r, c) for r in range(rows) for c in range(cols)]
    return keys, np.array([(r * step[0], c * step[1]) for r, c in keys])


def _pairs(keys, truth, nominal, score=0.9, skip=()):
    idx = {k: i for i, k in enumerate(keys)}
    out = []
    for k in keys:
        for n in ((k[0], k[1] + 1), (k[0] + 1, k[1])):
            if n in idx and (k, n) not in skip:
                off = tuple(truth[idx[n]] - truth[idx[k]])
                nom = tuple(nominal[idx[n]] - nominal[idx[k]])
                out.append(PairShift(k, n, nom, off, score))
    return out


def test_consistent_links_give_the_true_positions():
    keys, nominal = _grid(3, 3)
    truth = nominal + np.random.default_rng(0).uniform(-8, 8, nominal.shape)
    sol = solve_positions(keys, nominal, _pairs(keys, truth, nominal), threshold=0.5)
    d = sol.positions - truth
    np.testing.assert_allclose(d - d.mean(0), 0, atol=1e-6)
    assert sol.labels == ["registered"] * 9 and all(sol.accepted)


def test_an_inconsistent_link_is_rejected_and_named():
    keys, nominal = _grid(3, 3)
    truth = nominal.copy()
    pairs = _pairs(keys, truth, nominal)
    bad = pairs[4]
    pairs[4] = PairShift(bad.a, bad.b, bad.nominal, (bad.offset[0] + 9, bad.offset[1] - 7), 0.95)
    sol = solve_positions(keys, nominal, pairs, threshold=0.5)
    assert not sol.accepted[4] and "inconsistent" in sol.reasons[4]
    d = sol.positions - truth
    np.testing.assert_allclose(d - d.mean(0), 0, atol=1e-6)


def test_low_scores_are_rejected_and_unlinked_tiles_follow_the_stage_model():
    keys, nominal = _grid(3, 3)
    truth = nominal + np.array([2.0, -3.0])  # the stage is off by the same amount everywhere
    pairs = [
        p if (1, 1) not in (p.a, p.b) else PairShift(p.a, p.b, p.nominal, (0.0, 0.0), 0.05)
        for p in _pairs(keys, truth, nominal)
    ]
    sol = solve_positions(keys, nominal, pairs, threshold=0.3)
    centre = keys.index((1, 1))
    assert sol.labels[centre] == "stage-model"
    assert all(
        "below threshold" in r
        for r, p in zip(sol.reasons, pairs, strict=True)
        if (1, 1) in (p.a, p.b)
    )
    d = sol.positions - truth
    np.testing.assert_allclose(d - d.mean(0), 0, atol=1e-6)  # the model put it where it belongs


def test_an_island_is_labelled_isolated():
    keys, nominal = _grid(1, 4)
    truth = nominal.copy()
    # tiles 2 and 3 link to each other but not to the rest
    pairs = _pairs(keys, truth, nominal, skip={((0, 1), (0, 2))})
    sol = solve_positions(keys, nominal, pairs, threshold=0.5)
    assert sol.labels == ["registered", "registered", "isolated", "isolated"]


def test_each_pair_is_held_to_its_own_decoys_above_a_robust_floor():
    from lazystitch.registration._register import pair_thresholds

    # three self-similar strips' decoys lift the null's 99th percentile for everyone
    null = [0.02, 0.04, 0.05, 0.06, 0.08] * 6 + [0.8, 0.85, 0.88]
    threshold = float(np.percentile(null, 99))
    own = [0.1, 0.85, float("nan"), -0.2]
    got = pair_thresholds(threshold, null, own)
    floor = 0.05 + 6 * 1.4826 * 0.01  # median 0.05, median absolute deviation 0.01
    assert got[0] == pytest.approx(0.3)  # beats its own decoys by 0.2
    assert got[1] == threshold  # its own decoys are as high as anyone's
    assert got[2] == threshold  # no decoys of its own
    assert got[3] == pytest.approx(floor)  # never below the robust floor
    assert pair_thresholds(0.4, [], [0.1]) == [0.4]
