import numpy as np
import pandas as pd

BLQ = None  # marks a BLQ sample in profile()


def profile(subject, points, analyte="qpcr", lloq=20.0):
    """Observation rows from (time, value-or-BLQ[, pre_infusion]) tuples."""
    rows = []
    for i, pt in enumerate(points):
        t, v = pt[0], pt[1]
        pre = pt[2] if len(pt) > 2 else False
        rows.append({"subject": subject, "time": float(t), "analyte": analyte,
                     "value": np.nan if v is None else float(v), "unit": "copies/ug",
                     "lloq": lloq, "blq": v is None, "pre_infusion": pre,
                     "source_file": "obs.csv", "source_row": i + 2})
    return pd.DataFrame(rows)


# ---- PKNCA reference values (tests/data/pknca/lambda_z.R, PKNCA 0.12.1) -------------------
PKNCA_DIR = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "pknca"
#: intervals of lambda_z.R: every non-interval parameter over (0, inf), interval AUCs over
#: [0, 28] and [2, 10]
PKNCA_AUC_INTERVALS = ((0.0, 28.0), (2.0, 10.0))


def pknca_profiles():
    """profiles.csv as (observations, subjects): conc 0 is a BLQ sample (PKNCA's convention)."""
    d = pd.read_csv(PKNCA_DIR / "profiles.csv")
    blq = d["conc"].to_numpy() == 0
    obs = pd.DataFrame({"profile": d["profile"], "subject": d["subject"], "time": d["time"],
                        "value": np.where(blq, np.nan, d["conc"]), "blq": blq, "unit": "ng/mL"})
    subjects = d.groupby("subject", as_index=False, sort=False)["dose"].first()
    return obs, subjects


def pknca_intervals():
    from ctkinetics.nca.parameters import PARAMETERS

    names = [p.name for p in PARAMETERS.values() if not p.interval]
    aucs = [p.name for p in PARAMETERS.values() if p.interval]
    return ([{"start": 0.0, "end": np.inf, "parameters": names}]
            + [{"start": a, "end": b, "parameters": aucs} for a, b in PKNCA_AUC_INTERVALS])


def pknca_reference(file="pknca_long.csv"):
    """PKNCA's long results for the parameters requested (not its reported dependencies),
    with the registry name of each in ``parameter``."""
    from ctkinetics.nca.parameters import PARAMETERS

    ref = pd.read_csv(PKNCA_DIR / file)
    ref["parameter"] = ref["PPTESTCD"].map({p.pknca: p.name for p in PARAMETERS.values()})
    if "start" in ref:
        whole = np.isinf(ref["end"])
        interval = ref["parameter"].map(lambda n: PARAMETERS[n].interval if n in PARAMETERS else False)
        ref = ref[np.where(whole, ~interval, interval)]
    return ref.reset_index(drop=True)


def ours_against(ref, **options):
    """ctkinetics' NCA of profiles.csv merged with ``ref`` on subject, parameter, start, end."""
    from ctkinetics.nca import nca

    obs, subjects = pknca_profiles()
    res = nca(obs.drop(columns="profile"), subjects, intervals=pknca_intervals(), **options)
    keys = [k for k in ("subject", "parameter", "start", "end") if k in ref.columns]
    return ref.merge(res.results, on=keys, how="left", suffixes=("_pknca", ""), validate="1:1")
