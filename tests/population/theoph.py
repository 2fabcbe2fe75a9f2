"""R's Theoph data (tests/data/theoph.csv) as a data set for the population fits.

Dose is in mg/kg as R's SSfol uses it; time in hours; the concentration analyte is of kind
'conc' with no LLOQ (every sample quantified, the time-0 samples included as nlme does).
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ctkinetics.modeling import list_models, load_model

DATA = Path(__file__).resolve().parents[1] / "data" / "theoph.csv"
HERE = Path(__file__).resolve().parent

#: R nlme (Pinheiro & Bates), conc ~ SSfol(Dose, Time, lKe, lKa, lCl), random =
#: pdDiag(lKa + lCl ~ 1), method ML — run with R 4 / nlme 3.1 while writing these tests.
NLME = {"lKe": -2.454704, "lKa": 0.465736, "lCl": -3.227223, "logLik": -177.02142,
        "sd_lKa": 0.6435747, "sd_lCl": 0.1669282, "sigma": 0.7092544,
        "se_lKe": 0.05249039, "se_lKa": 0.19856304, "se_lCl": 0.06001022}


def dataset(path=DATA, lloq=np.nan):
    th = pd.read_csv(path)
    value = th["conc"].to_numpy(float)
    blq = np.zeros(len(th), bool)
    if np.isfinite(lloq):
        blq = value < lloq
        value = np.where(blq, np.nan, value)
    obs = pd.DataFrame({
        "subject": th["Subject"].astype(str), "time": th["Time"].astype(float),
        "analyte": "conc", "value": value, "unit": "mg/L", "lloq": float(lloq), "blq": blq,
        "pre_infusion": False, "source_file": str(path), "source_row": np.arange(2, len(th) + 2)})
    first = th.groupby("Subject", sort=False).first().reset_index()
    subjects = pd.DataFrame({"subject": first["Subject"].astype(str), "dose_level": "1",
                             "dose": first["Dose"].astype(float), "wt": first["Wt"]})
    analytes = {"conc": SimpleNamespace(name="conc", unit="mg/L", lloq=lloq, kind="conc")}
    return SimpleNamespace(observations=obs, subjects=subjects,
                           study=SimpleNamespace(name="theoph", analytes=analytes))


def study_folder(tmp_path):
    """Theoph written as a tidy study folder (for the ``ctk popfit`` tests)."""
    th = pd.read_csv(DATA)
    study = Path(tmp_path) / "theo"
    study.mkdir()
    (study / "study.toml").write_text(
        '[study]\nname = "theoph"\n\n[dose_levels]\n1 = 4.0\n\n'
        '[analytes.conc]\nunit = "mg/L"\nkind = "conc"\n')
    first = th.groupby("Subject", sort=False).first().reset_index()
    pd.DataFrame({"subject": first["Subject"], "dose_level": 1, "dose": first["Dose"],
                  "wt": first["Wt"]}).to_csv(study / "subjects.csv", index=False)
    pd.DataFrame({"subject": th["Subject"], "time": th["Time"], "analyte": "conc",
                  "value": th["conc"], "unit": "mg/L"}).to_csv(study / "observations.csv",
                                                               index=False)
    return study


def onecpt_model():
    """The shipped onecpt_oral model when the library has it, else the test copy."""
    if "onecpt_oral" in list_models():
        return load_model("onecpt_oral")
    return load_model(HERE / "onecpt_oral_test.toml")
