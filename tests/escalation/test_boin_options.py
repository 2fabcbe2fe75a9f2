"""R BOIN's design options (n.earlystop, extrasafe/offset, boundMTD) against R BOIN 2.7.2.

The reference numbers are R's own: tests/data/boin_getoc/get_oc_reference.csv was written by
tests/data/boin_getoc/get_oc_reference.R (get.oc, 20,000 trials per scenario, seed 2027) with
BOIN 2.7.2 built from source. The two simulations use different random numbers, so they agree
within Monte Carlo error: the difference of two independent estimates of a percentage p from
N1 and N2 trials has SE = 100·sqrt(p(1 − p)(1/N1 + 1/N2)); we allow 4.5 SE (+0.05 points) per
level (with 7 scenarios × ~5 levels, a 4.5-SE miss has probability < 0.03 % overall)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.escalation import BoinDesign, select_mtd
from ctkinetics.escalation.simulate import simulate_boin

REF = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "boin_getoc" / "get_oc_reference.csv")
N_OURS = 20000


def _design(s) -> BoinDesign:
    n_early = int(s["n_earlystop"])
    return BoinDesign(0.3, cohort_size=int(s["cohortsize"]), n_earlystop=None if n_early >= 100 else n_early,
                      extrasafe=bool(s["extrasafe"]), offset=float(s["offset"]), bound_mtd=bool(s["boundMTD"]))


@pytest.mark.parametrize("scenario", list(dict.fromkeys(REF["scenario"])))
def test_selection_percentages_equal_r_boin_get_oc(scenario):
    ref = REF[REF["scenario"] == scenario].sort_values("level")
    s = ref.iloc[0]
    oc = simulate_boin(_design(s), ref["true_tox"].tolist(), int(s["ncohort"]), N_OURS, seed=11)
    n_ref = int(s["ntrial"])

    def close(ours, theirs):
        p = np.clip((np.asarray(ours) + np.asarray(theirs)) / 200.0, 1e-4, 1)
        se = 100 * np.sqrt(p * (1 - p) * (1 / N_OURS + 1 / n_ref))
        return np.abs(np.asarray(ours) - np.asarray(theirs)) <= 4.5 * se + 0.05

    assert close(oc.selection_pct, ref["selection_pct"]).all(), (oc.selection_pct, ref["selection_pct"].tolist())
    assert close(oc.no_mtd_pct, s["no_mtd_pct"]), (oc.no_mtd_pct, s["no_mtd_pct"])
    # mean participants per level: SE from our own spread (R's is about the same)
    sd = oc.n.std(axis=0)
    se = sd * np.sqrt(1 / N_OURS + 1 / n_ref)
    assert (np.abs(np.asarray(oc.mean_participants) - ref["mean_participants"].to_numpy()) <= 4.5 * se + 0.02).all()


def test_options_change_what_they_should():
    # n.earlystop shortens trials; extrasafe stops more often; boundMTD selects lower
    r = REF.groupby("scenario").first()
    assert r.loc["n_earlystop_9", "total_n"] < r.loc["default", "total_n"] - 5
    p = [0.30, 0.42, 0.55, 0.65, 0.75]
    plain = simulate_boin(BoinDesign(0.3), p, 10, 4000, seed=3)
    safe = simulate_boin(BoinDesign(0.3, extrasafe=True), p, 10, 4000, seed=3)
    assert safe.no_mtd_pct > plain.no_mtd_pct + 5


def test_bound_mtd_by_hand():
    # n = (3, 6, 6), y = (0, 1, 3): estimates 0.016, 0.180, 0.500 (already monotone). Closest to
    # 0.3 is level 2 (|0.18 - 0.3| = 0.12 < |0.5 - 0.3|); with boundMTD the estimate must be
    # <= lambda_d = 0.3585: level 2 still qualifies. With y = (0, 3, 3) the estimates are
    # 0.016, 0.500, 0.500 (pooled): closest is level 2 (tie-break 1e-10 picks the lowest above
    # the target) and it is above lambda_d, so boundMTD leaves only level 1.
    d = BoinDesign(0.3)
    b = BoinDesign(0.3, bound_mtd=True)
    assert select_mtd(d, [3, 6, 6], [0, 1, 3]).mtd_index == 1
    assert select_mtd(b, [3, 6, 6], [0, 1, 3]).mtd_index == 1
    assert select_mtd(d, [3, 6, 6], [0, 3, 3]).mtd_index == 1
    sel = select_mtd(b, [3, 6, 6], [0, 3, 3])
    assert sel.mtd_index == 0 and "boundMTD" in sel.reason
    # every admissible level above lambda_d: no MTD (R returns 99)
    assert select_mtd(b, [6, 6], [3, 3]).mtd_index == -1
