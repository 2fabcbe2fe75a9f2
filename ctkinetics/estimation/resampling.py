"""What the resampling methods share (bootstrap, SIR, covariate search): a data set and a
model that travel to Dask workers, case resampling stratified by dose level and study phase,
one random stream per replicate, and running many fits on an executor.

Reproducibility: replicate ``r`` of a run with seed ``s`` draws from
``numpy.random.SeedSequence(s, spawn_key=(r,))`` whatever worker runs it, and results are
consumed in replicate order (:mod:`ctkinetics.executors`), so a run gives the same numbers
on 1, 2 or 20 workers and in this process.

>>> import numpy as np, pandas as pd
>>> strata = {"S1": "1", "S2": "1", "S3": "2", "S4": "2", "S5": "2"}
>>> d = draw_subjects(strata, replicate_rng(7, 0))
>>> len(d), sorted(set(s[:2] for s in d[:2])) <= ["S1", "S2"], all(s in ("S3", "S4", "S5") for s in d[2:])
(5, True, True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError

#: Columns of the subjects (or safety) table that define resampling strata by default.
DEFAULT_STRATA = ("dose_level", "phase")

# --------------------------------------------------------------------------------------
# a model that pickles
# --------------------------------------------------------------------------------------
_MODELS: dict = {}


@dataclass(frozen=True)
class ModelRef:
    """A picklable stand-in for a :class:`~ctkinetics.modeling.Model`: its file text (so a
    worker of a remote cluster needs no copy of the file) and solver tolerances. A worker
    parses it once (cached by content)."""

    text: str
    file: str
    rtol: float | None = None
    atol: float | None = None
    log_states: bool | None = None
    max_step: float | None = None

    @classmethod
    def of(cls, model) -> "ModelRef":
        from pathlib import Path

        from ctkinetics.modeling import load_model

        if isinstance(model, ModelRef):
            return model
        model = load_model(model)
        src = getattr(model, "source_file", "") or ""
        if not src or not Path(src).is_file():
            raise SettingsError(f"model '{model.name}' has no source file to send to the "
                                "workers; load it from a .toml file or the library")
        return cls(Path(src).read_text(encoding="utf-8"), src, getattr(model, "rtol", None),
                   getattr(model, "atol", None), getattr(model, "log_states", None),
                   getattr(model, "max_step", None))

    def load(self):
        """The model in this process, with the solver settings it was sent with (tolerances,
        log coordinates, longest step: a copy made by ``with_tolerances`` stays that copy)."""
        key = (self.text, self.rtol, self.atol, self.log_states, self.max_step)
        if key not in _MODELS:
            from ctkinetics.modeling.model import Model
            from ctkinetics.modeling.modelfile import parse_model_text

            m = Model(**parse_model_text(self.text, self.file))
            wanted = (self.rtol, self.atol, self.log_states, self.max_step)
            if self.rtol is not None and wanted != (m.rtol, m.atol, m.log_states, m.max_step):
                m = m.with_tolerances(*wanted)
            _MODELS[key] = m
        return _MODELS[key]


# --------------------------------------------------------------------------------------
# a data set that pickles and resamples
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitData:
    """What a fit reads of a data set (``observations``, ``subjects``, ``study.analytes``),
    in a form that pickles (a :class:`~ctkinetics.data.Dataset` holds read-only mappings).

    ``strata`` maps each subject to its resampling stratum (see :func:`strata_of`).
    """

    observations: pd.DataFrame
    subjects: pd.DataFrame
    study: SimpleNamespace
    strata: dict = field(default_factory=dict)

    @classmethod
    def of(cls, dataset, strata=DEFAULT_STRATA) -> "FitData":
        if isinstance(dataset, FitData):
            return dataset
        table = getattr(getattr(dataset, "study", None), "analytes", None) or {}
        analytes = {str(k): SimpleNamespace(name=str(k), unit=getattr(a, "unit", "") or "",
                                            lloq=getattr(a, "lloq", np.nan),
                                            kind=getattr(a, "kind", None) or str(k))
                    for k, a in dict(table).items()}
        study = SimpleNamespace(name=getattr(getattr(dataset, "study", None), "name", ""),
                                analytes=analytes)
        obs = dataset.observations.copy()
        obs["subject"] = obs["subject"].astype(str)
        subjects = getattr(dataset, "subjects", None)
        subjects = (pd.DataFrame({"subject": list(dict.fromkeys(obs["subject"]))})
                    if subjects is None else subjects.copy())
        subjects["subject"] = subjects["subject"].astype(str)
        return cls(obs, subjects, study, strata_of(dataset, strata))

    @property
    def subject_ids(self) -> list[str]:
        return list(dict.fromkeys(self.observations["subject"]))

    def take(self, draw, rename=True) -> "FitData":
        """The data set of the subjects ``draw`` (with repeats): the k-th drawn subject is
        renamed ``<id>~<k>`` (1-based), so that a subject drawn twice counts as two."""
        draw = [str(s) for s in draw]
        names = [f"{s}~{k + 1}" for k, s in enumerate(draw)] if rename else draw
        by_obs = dict(tuple(self.observations.groupby("subject", sort=False)))
        by_sub = dict(tuple(self.subjects.groupby("subject", sort=False)))
        obs, subs = [], []
        for s, new in zip(draw, names):
            if s not in by_obs:
                raise SettingsError(f"subject '{s}' has no samples to resample")
            obs.append(by_obs[s].assign(subject=new))
            if s in by_sub:
                subs.append(by_sub[s].iloc[:1].assign(subject=new))
        subjects = (pd.concat(subs, ignore_index=True) if subs
                    else pd.DataFrame({"subject": names}))
        strata = {new: self.strata.get(s, "") for s, new in zip(draw, names)}
        return FitData(pd.concat(obs, ignore_index=True), subjects, self.study, strata)

    def without(self, subject) -> "FitData":
        """The data set without one subject (a jackknife sample)."""
        keep = [s for s in self.subject_ids if s != str(subject)]
        return self.take(keep, rename=False)


def strata_of(dataset, by=DEFAULT_STRATA) -> dict:
    """subject -> stratum label: the values of the columns ``by`` found in the subjects
    table or, for ``phase``, the safety table (escalation / expansion); '' when none.

    A column named in ``by`` that the data do not have is skipped, so the default
    (dose level and study phase) works for a study with or without a safety table.
    """
    obs = dataset.observations
    ids = list(dict.fromkeys(obs["subject"].astype(str)))
    by = [by] if isinstance(by, str) else list(by or ())
    tables = [getattr(dataset, "subjects", None), getattr(dataset, "safety", None)]
    labels = {s: [] for s in ids}
    for col in by:
        src = next((t for t in tables if t is not None and col in getattr(t, "columns", ())),
                   None)
        if src is None:
            continue
        m = dict(zip(src["subject"].astype(str), src[col].astype(str)))
        for s in ids:
            labels[s].append(f"{col}={m.get(s, '')}")
    return {s: " & ".join(v) for s, v in labels.items()}


def replicate_rng(seed: int, replicate: int) -> np.random.Generator:
    """The random stream of one replicate (independent of workers and batching)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(replicate),)))


def draw_subjects(strata: dict, rng) -> list[str]:
    """Case resampling: within each stratum (in order of first appearance) as many subjects
    as it has, drawn with replacement."""
    groups: dict = {}
    for s, g in strata.items():
        groups.setdefault(g, []).append(s)
    out = []
    for members in groups.values():
        out += [members[i] for i in rng.integers(0, len(members), len(members))]
    return out


# --------------------------------------------------------------------------------------
# running many fits
# --------------------------------------------------------------------------------------
def run_tasks(executor, fn, args, items, consume, batch_size=1, progress=None,
              what="replicates") -> dict:
    """Run ``fn(*args, chunk)`` for consecutive chunks of ``items`` on ``executor`` (default:
    this process) and hand each result list to ``consume`` in item order. Returns where
    it ran and how long it took (``workers``, ``where``, ``seconds``)."""
    import time

    from ctkinetics.executors import SerialExecutor

    executor = executor or SerialExecutor()
    items = list(items)
    t0 = time.perf_counter()
    size = int(getattr(executor, "batch_size", None) or batch_size or 1)
    tasks = [(items[i:i + size],) for i in range(0, len(items), size)]
    done = [0]

    def take(results):
        consume(results)
        done[0] += len(results)
        if progress is not None:
            progress(f"{done[0]}/{len(items)} {what}")

    with executor.connect() as session:
        workers = session.n_workers
        where = session.where
        session.run(fn, args, tasks, take)
    return {"workers": int(workers), "where": str(where),
            "seconds": time.perf_counter() - t0}


__all__ = ["ModelRef", "FitData", "strata_of", "replicate_rng", "draw_subjects", "run_tasks",
           "DEFAULT_STRATA"]
