"""Small stand-ins for ctkinetics.modeling models and ctkinetics.data datasets.

They follow the interfaces pinned in DEVELOPERS.md so the estimation layer is tested on its
own; the formulas here are written independently of the model library.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Param:
    name: str
    default: float
    lower: float
    upper: float
    unit: str = ""
    scale: str = "log"


@dataclass(frozen=True)
class OneCptOral:
    """C(t) = dose·ke·ka/(CL·(ka − ke))·(exp(−ke t) − exp(−ka t)), i.e. R's SSfol."""

    name: str = "onecpt_oral_fake"
    parameters: tuple = (Param("ka", 1.5, 1e-3, 100, "1/h"), Param("ke", 0.08, 1e-4, 10, "1/h"),
                         Param("CL", 0.04, 1e-4, 10, "L/h/kg"))
    covariates: tuple = ("dose",)
    observables: dict = field(default_factory=lambda: {"conc": "C"})

    @property
    def param_names(self):
        return [p.name for p in self.parameters]

    def predict(self, params, times, covariates=None, observables=None):
        ka, ke, cl = (np.asarray(params[k], float)[..., None] for k in ("ka", "ke", "CL"))
        dose = np.asarray((covariates or {}).get("dose", 1.0), float)[..., None]
        t = np.asarray(times, float)
        c = dose * ke * ka / (cl * (ka - ke)) * (np.exp(-ke * t) - np.exp(-ka * t))
        return {"conc": c}

    def derived(self, params):
        return {"t_half": np.log(2) / params["ke"]}


@dataclass(frozen=True)
class Stein:
    """Stein 2019 piecewise closed form (DOMAIN.md §3.1), qPCR observable."""

    name: str = "stein_fake"
    parameters: tuple = (
        Param("Cmax", 24000, 1, 1e8, "copies/ug"), Param("Tmax", 9.3, 1, 40, "day"),
        Param("foldx", 3900, 1.01, 1e7, ""), Param("alpha", 0.16, 1e-3, 5, "1/day"),
        Param("beta", 0.0032, 1e-5, 0.5, "1/day"), Param("FB", 0.0079, 1e-6, 0.5, "")
    )
    covariates: tuple = ()
    observables: dict = field(default_factory=lambda: {"qpcr": "C"})

    def predict(self, params, times, covariates=None, observables=None):
        p = {k: np.asarray(params[k], float)[..., None] for k in
             ("Cmax", "Tmax", "foldx", "alpha", "beta", "FB")}
        t = np.asarray(times, float)
        rho = np.log(p["foldx"]) / p["Tmax"]
        r0 = p["Cmax"] / p["foldx"]
        dt = t - p["Tmax"]
        up = r0 * np.exp(rho * np.minimum(t, p["Tmax"]))
        down = p["Cmax"] * ((1 - p["FB"]) * np.exp(-p["alpha"] * np.maximum(dt, 0))
                            + p["FB"] * np.exp(-p["beta"] * np.maximum(dt, 0)))
        c = np.where(t < p["Tmax"], up, down)
        return {"qpcr": c}

    def derived(self, params):
        return {"doubling_time": params["Tmax"] * np.log(2) / np.log(params["foldx"])}


def dataset(obs: pd.DataFrame, subjects: pd.DataFrame, analytes: dict):
    """analytes: name -> (unit, lloq, kind)."""
    full = obs.copy()
    for col, default in (("unit", ""), ("lloq", np.nan), ("blq", False),
                         ("pre_infusion", False), ("source_file", "test.csv")):
        if col not in full:
            full[col] = default
    if "source_row" not in full:
        full["source_row"] = np.arange(2, len(full) + 2)
    ans = {k: SimpleNamespace(name=k, unit=u, lloq=l, kind=kd)
           for k, (u, l, kd) in analytes.items()}
    return SimpleNamespace(observations=full, subjects=subjects,
                           study=SimpleNamespace(analytes=ans))


def theoph(path):
    th = pd.read_csv(path)
    obs = pd.DataFrame({"subject": th["Subject"].astype(str), "time": th["Time"],
                        "analyte": "conc", "value": th["conc"], "unit": "mg/L"})
    subj = th.groupby("Subject", sort=False).first().reset_index()
    subjects = pd.DataFrame({"subject": subj["Subject"].astype(str), "dose_level": "1",
                             "dose": subj["Dose"]})
    return dataset(obs, subjects, {"conc": ("mg/L", np.nan, "conc")})
