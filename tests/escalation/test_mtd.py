"""Isotonic MTD selection (BOIN's select.mtd) against hand calculations and a second method."""
import numpy as np
import pytest
from scipy.stats import beta

from ctkinetics.escalation import BoinDesign, pava, select_mtd
from ctkinetics.escalation.mtd import isotonic_minmax, select_mtd_batch

D = BoinDesign(0.30)


def test_select_mtd_package_example():
    # BOIN::select.mtd example: n = (3,3,15,9,0), y = (0,0,4,4,0) -> MTD = dose 3, estimates
    # (y+.05)/(n+.1) already monotone: 0.02, 0.02, 0.27, 0.45.
    r = select_mtd(D, [3, 3, 15, 9, 0], [0, 0, 4, 4, 0])
    assert r.mtd_index == 2 and r.mtd_level == "3"
    est = r.to_frame()["estimate"].to_numpy()
    assert est[:4] == pytest.approx([0.05 / 3.1, 0.05 / 3.1, 4.05 / 15.1, 4.05 / 9.1])
    assert np.isnan(est[4])


def test_pava_hand_example_and_against_brute_force_minmax():
    assert pava([0.3, 0.1], [1, 3]) == pytest.approx([0.15, 0.15])
    assert pava([0.1, 0.5, 0.2, 0.6]) == pytest.approx([0.1, 0.35, 0.35, 0.6])
    rng = np.random.default_rng(3)
    for _ in range(200):
        x = rng.random(6)
        w = rng.random(6) + 0.1
        assert pava(x, w) == pytest.approx(isotonic_minmax(x, w), abs=1e-12)


def test_tie_in_pooled_block_below_target_picks_highest():
    # (1/3, 0/3) violate monotonicity; pooled estimate ~0.04 < 0.3 -> the higher dose wins.
    r = select_mtd(D, [3, 3], [1, 0])
    est = r.to_frame()["estimate"].to_numpy()
    assert est[0] == est[1] < 0.3
    assert r.mtd_index == 1


def test_tie_in_pooled_block_above_target_picks_lowest():
    r = select_mtd(D, [3, 3], [2, 1])  # pooled 0.5 > 0.3 (equal weights by symmetry)
    assert r.to_frame()["estimate"].to_numpy() == pytest.approx([0.5, 0.5])
    assert r.mtd_index == 0


def test_eliminated_and_untried_doses_are_not_selected():
    # Dose 3 eliminated (3/3) although its estimate is irrelevant; dose 4 untried.
    r = select_mtd(D, [3, 6, 3, 0], [0, 1, 3, 0])
    t = r.to_frame()
    assert t["eliminated"].tolist() == [False, False, True, True]
    assert r.mtd_index == 1


def test_no_mtd_when_lowest_eliminated():
    r = select_mtd(D, [3, 0, 0], [3, 0, 0])
    assert r.mtd_level is None and r.mtd_index == -1
    assert select_mtd_batch(D, [[3, 0, 0]], [[3, 0, 0]])[0] == -1


def test_credible_interval_single_dose_is_beta_quantiles():
    r = select_mtd(D, [6], [2]).to_frame().iloc[0]
    assert r["ci_low"] == pytest.approx(beta.ppf(0.025, 2.05, 4.05))
    assert r["ci_high"] == pytest.approx(beta.ppf(0.975, 2.05, 4.05))
    assert r["ci_low"] < r["estimate"] < r["ci_high"]


def _reference_select(target, n, y):
    """select.mtd written out step by step (sequential PAVA, explicit loops)."""
    k = len(n)
    elim = k
    for i in range(k):
        if n[i] >= 3 and beta.sf(target, y[i] + 1, n[i] - y[i] + 1) > 0.95:
            elim = i
            break
    if elim == 0 or sum(n[:elim]) == 0:
        return -1
    idx = [i for i in range(elim) if n[i] > 0]
    p = [(y[i] + 0.05) / (n[i] + 0.1) for i in idx]
    w = [1 / ((y[i] + 0.05) * (n[i] - y[i] + 0.05) / ((n[i] + 0.1) ** 2 * (n[i] + 1.1))) for i in idx]
    iso = pava(p, w) + np.arange(1, len(idx) + 1) * 1e-10
    return idx[int(np.argmin(np.abs(iso - target)))]


def test_batch_selection_equals_reference_procedure():
    rng = np.random.default_rng(7)
    n = rng.integers(0, 4, size=(300, 5)) * 3
    y = rng.binomial(n, [0.05, 0.15, 0.3, 0.45, 0.6])
    batch = select_mtd_batch(D, n, y)
    reference = [_reference_select(0.3, n[i], y[i]) for i in range(len(n))]
    assert batch.tolist() == reference
