"""Generate the sample SLE cohort in data/sample/ (seeded; run: python data/sample/generate.py).

A simulated phase I cohort of the seed study (allogeneic CD19/CD20 CAR-T in refractory SLE):
12 participants over three dose levels (3.0e8, 4.5e8, 6.0e8 CAR+ T cells) following a
plausible BOIN course with the 14-day stagger inside each dose group, then written as
  sle_cohort/          the tidy study folder (study.toml, subjects.csv, observations.csv, safety.csv)
  sle_cohort_nonmem/   the same cohort as a NONMEM data set (+ study.toml, safety.csv)
  sle_cohort_sdtm/     the same cohort as CDISC SDTM DM, EX, CP transport files (+ study.toml, safety.csv)

Assumptions (stated, not measured):
- Kinetics come from the project's own ``cart_bcell_sle`` model: CAR-T expansion driven by
  the participant's B cells, typical peak around day 9 (SLE), B cells depleted within days
  and reappearing after about 110 ± 32 days (Mackensen et al. 2022). Between-participant
  variability is log-normal with the model file's ω² (0.65 on the circulating
  fraction fE, as for log Cmax in Stein 2019), so dose explains little.
- Assays: qPCR transgene copies/µg gDNA (LLOQ 20), flow CAR+ cells/µL (LLOQ 0.5), B cells/µL
  (LLOQ 1); residual errors proportional 25 %, 30 % and 20 %.
- Sampling: pre-infusion (day -3 to -1) and days 1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180 after
  infusion, up to the data cut-off (study day 200), so late participants have shorter follow-up.
- Calendar and safety: DL1 infused on study days 0, 14, 17; DL2 on 48, 62, 64 (one DLT, grade 3
  CRS) then a second DL2 cohort on 95, 97, 100; DL3 on 130, 144 and 180 (one DLT, grade 3 ICANS
  on day 9); the last participant is still inside the 28-day DLT window at the cut-off.
- Labs report below-LLOQ values in several ways (``<20``, ``BLQ``, ``<LLOQ``); two samples are
  missing (empty) and appear in the audit.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20261125
CUTOFF_DAY = 200.0
DOSES = {"1": 3.0e8, "2": 4.5e8, "3": 6.0e8}
SCHEDULE = [1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180]
ANALYTES = {  # name: (kind, unit, lloq, proportional residual SD)
    "transgene": ("qpcr", "copies/ug", 20.0, 0.25),
    "car_flow": ("flow", "cells/uL", 0.5, 0.30),
    "bcell": ("bcell", "cells/uL", 1.0, 0.20),
}
# subject, dose level, infusion study day, dlt (1/0/None pending), dlt_day, crs, icans, age, sex
PARTICIPANTS = [
    ("SLE-101", "1", 0, 0, None, 1, 0, 34, "F"),
    ("SLE-102", "1", 14, 0, None, 0, 0, 28, "F"),
    ("SLE-103", "1", 17, 0, None, 1, 0, 45, "M"),
    ("SLE-201", "2", 48, 0, None, 1, 0, 39, "F"),
    ("SLE-202", "2", 62, 1, 5, 3, 0, 23, "F"),
    ("SLE-203", "2", 64, 0, None, 2, 0, 51, "F"),
    ("SLE-204", "2", 95, 0, None, 1, 0, 31, "F"),
    ("SLE-205", "2", 97, 0, None, 0, 0, 42, "M"),
    ("SLE-206", "2", 100, 0, None, 1, 1, 36, "F"),
    ("SLE-301", "3", 130, 0, None, 2, 0, 29, "F"),
    ("SLE-302", "3", 144, 1, 9, 2, 3, 47, "F"),
    ("SLE-303", "3", 180, None, None, 1, 0, 33, "F"),
]
STUDY_TOML = """[study]
name = "CD19/CD20 allogeneic CAR-T in refractory SLE (simulated sample cohort)"
start_date = "2026-01-05"

[dose_levels]
1 = 3.0e8
2 = 4.5e8
3 = 6.0e8

[design]
target_dlt_rate = 0.30
dlt_window_days = 28
stagger_days = 14
cohort_size = 3
max_subjects = 12

[analytes.transgene]
unit = "copies/ug"
lloq = 20
kind = "qpcr"

[analytes.car_flow]
unit = "cells/uL"
lloq = 0.5
kind = "flow"

[analytes.bcell]
unit = "cells/uL"
lloq = 1
kind = "bcell"
"""


def simulate_truth(subjects: pd.DataFrame, times: np.ndarray) -> dict:
    """Noise-free predictions per participant from the project's cart_bcell_sle model, with
    the model file's own between-subject variances (omega2)."""
    from ctkinetics.modeling import load_model, simulate_population

    model = load_model("cart_bcell_sle")
    dose = subjects["dose"].to_numpy(float)
    pop = simulate_population(model, len(subjects), times=times, seed=SEED, covariates={"dose": dose})
    params = {name: pop.parameters[name].to_numpy(float) for name in model.param_names}
    return model.predict(params, times, covariates={"dose": dose})


def main(out: Path = HERE) -> None:
    rng = np.random.default_rng(SEED)
    subj = pd.DataFrame(PARTICIPANTS, columns=["subject", "dose_level", "infusion_day", "dlt", "dlt_day",
                                               "crs_grade", "icans_grade", "age", "sex"])
    subj["dose"] = subj["dose_level"].map(DOSES)
    followup = CUTOFF_DAY - subj["infusion_day"].to_numpy(float)
    pre_day = -rng.integers(1, 4, len(subj)).astype(float)
    times = np.array(sorted(set(SCHEDULE)), dtype=float)
    truth = simulate_truth(subj, np.concatenate([[0.0], times]))
    rows = []
    for i, s in subj.iterrows():
        for name, (kind, unit, lloq, sd) in ANALYTES.items():
            curve = truth[kind][i]
            baseline = curve[0]
            samples = [(pre_day[i], baseline if kind == "bcell" else 0.0)]
            samples += [(t, c) for t, c in zip(times, curve[1:]) if t <= followup[i]]
            for t, c in samples:
                y = c * np.exp(sd * rng.standard_normal()) if c > 0 else 0.0
                if y < lloq:
                    marker = {"transgene": f"<{lloq:g}", "car_flow": "<LLOQ", "bcell": "BLQ"}[name]
                    value = marker if rng.random() < 0.8 else "BLQ"
                else:
                    value = f"{y:.4g}"
                rows.append((s.subject, t, name, value, unit))
    obs = pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "unit"])
    # Two samples the lab could not report (haemolysed, lost): missing, listed in the audit.
    for k in rng.choice(np.flatnonzero((obs["time"] > 0).to_numpy()), 2, replace=False):
        obs.loc[k, "value"] = ""
    obs["time"] = obs["time"].map(lambda t: f"{t:g}")

    tidy = out / "sle_cohort"
    if tidy.exists():
        shutil.rmtree(tidy)
    tidy.mkdir(parents=True)
    (tidy / "study.toml").write_text(STUDY_TOML)
    subj[["subject", "dose_level", "dose", "age", "sex"]].assign(dose=subj["dose"].map(lambda d: f"{d:.3g}")).to_csv(
        tidy / "subjects.csv", index=False)
    obs.to_csv(tidy / "observations.csv", index=False)
    safety = subj[["subject", "infusion_day", "dlt", "dlt_day"]].copy()
    safety["last_followup_day"] = followup
    safety["crs_grade"] = subj["crs_grade"]
    safety["icans_grade"] = subj["icans_grade"]
    safety["phase"] = "escalation"
    for c in ("dlt", "dlt_day"):
        safety[c] = safety[c].map(lambda x: "" if x is None or pd.isna(x) else f"{int(x)}")
    safety["last_followup_day"] = safety["last_followup_day"].map(lambda x: f"{x:g}")
    safety.to_csv(tidy / "safety.csv", index=False)

    from ctkinetics.data import load_study, write_study

    ds = load_study(tidy, warn=False)
    for fmt, folder in (("nonmem", "sle_cohort_nonmem"), ("sdtm", "sle_cohort_sdtm")):
        if (out / folder).exists():
            shutil.rmtree(out / folder)
        write_study(ds, out / folder, fmt)
    print(f"wrote {ds!r} to {tidy} (+ NONMEM and SDTM renderings)", file=sys.stderr)


if __name__ == "__main__":
    main()
