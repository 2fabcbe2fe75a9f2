"""Stepwise covariate model building (SCM) for a population fit, with PsN ``scm``'s
conventions (Jonsson & Karlsson 1998; PsN scm user guide).

Candidate relations are (parameter, covariate, form):

=============  =================================  ====  ==========================
form           effect on a log-scale parameter    df    for
=============  =================================  ====  ==========================
power          P = TV·(x/median)^β                1     positive continuous
exponential    P = TV·exp(β·(x − median))         1     continuous
categorical    P = TV·exp(β_k) in category k      k−1   text or ≤ ``max_levels``
                (the most frequent one the                values
                reference, β = 0)
=============  =================================  ====  ==========================

(``power`` and ``exponential`` are the population fit's own covariate models; a categorical
relation is k − 1 exponential effects on 0/1 indicator columns.) By default the candidates are
every covariate column of the subjects table (``dose`` included; ``subject``, ``dose_level``
and columns with missing values left out, with the reason in the log) on every parameter with a
random effect; continuous covariates get the power form where all values are positive, else
the exponential one.

Forward inclusion: from the current model, each candidate not yet in it is added and fitted;
the one with the largest drop of the objective (−2LL, FOCE-I) is included if its likelihood
ratio test gives p < ``p_forward`` (0.05: dOFV > 3.84 for 1 df); repeat until none does.
Backward elimination: each included relation is removed in turn; the one whose removal raises
the objective least is removed if p ≥ ``p_backward`` (0.01: dOFV < 6.63 for 1 df); repeat
until every relation left is significant. Every fit of every step is in the log. Candidate
fits of a step run on an executor (:mod:`ctkinetics.executors`), each started from the current
model's estimates.

>>> s = covariate_search(ds, "stein2019", parameters="Cmax,Tmax",
...                      covariates="dose,age,sex", method="focei")        # doctest: +SKIP
>>> s.log[["step", "direction", "relation", "dofv", "p_value", "selected"]]  # doctest: +SKIP
>>> s.relations                                      # e.g. ['Cmax~dose:power']  # doctest: +SKIP
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.resampling import FitData, ModelRef, run_tasks
from ctkinetics.estimation.result_folder import FolderResult

FORMS = ("power", "exponential", "categorical")
LOG_COLUMNS = ["step", "direction", "relation", "df", "ofv", "base_ofv", "dofv", "p_value",
               "threshold", "status", "selected", "model", "message"]
SKIP_COLUMNS = ("subject", "dose_level")


@dataclass(frozen=True)
class Relation:
    """A candidate relation of a covariate on a parameter."""

    parameter: str
    covariate: str
    form: str
    levels: tuple = ()          # categorical: the non-reference levels
    reference: object = None    # categorical: the reference level

    @property
    def name(self) -> str:
        return f"{self.parameter}~{self.covariate}:{self.form}"

    @property
    def df(self) -> int:
        return len(self.levels) if self.form == "categorical" else 1

    def effects(self):
        """The population fit's covariate effects of this relation."""
        from ctkinetics.estimation.population.spec import CovariateEffect

        if self.form == "categorical":
            return [CovariateEffect(self.parameter, indicator(self.covariate, lv),
                                    "exponential", 0.0) for lv in self.levels]
        return [CovariateEffect(self.parameter, self.covariate, self.form)]


def indicator(covariate, level) -> str:
    """Name of the 0/1 column of one category."""
    return f"{covariate}[{level}]"


@dataclass(frozen=True)
class CovariateSearchResult(FolderResult):
    """A stepwise covariate search.

    Attributes
    ----------
    relations : list of str
        The relations of the final model (``PARAM~COV:form``).
    log : DataFrame
        Every fit of every step (:data:`LOG_COLUMNS`): step, direction (forward /
        backward / skipped), relation tested, degrees of freedom, its −2LL, the −2LL of the
        model it was compared with, dOFV (drop when adding, rise when removing), p-value of
        the likelihood-ratio test, threshold, fit status, whether it was selected, the
        relations of the model after the step, and a message.
    final : PopulationResult
        The final model refitted with its covariance step.
    settings : dict
    """

    relations: list
    log: pd.DataFrame
    final: object = field(default=None, compare=False, repr=False)
    settings: dict = field(default_factory=dict)
    final_relations: tuple = field(default=(), compare=False, repr=False)

    def data_for(self, dataset):
        """``dataset`` with the indicator columns the final model's categorical relations
        use (what bootstrap, SIR, NPDE of the final model must be given)."""
        return with_indicators(FitData.of(dataset), self.final_relations)

    def to_frame(self) -> pd.DataFrame:
        return self.log.copy()

    FILES = (("log", "covariate_search.csv"),)
    JSON, KIND, META = "covariate_search.json", "covariate search", ("relations", "settings")

    def tables(self) -> dict:
        out = super().tables()
        if self.final is not None and not self.final.failed:
            p = self.final.parameters
            out["covariate_search_final.csv"] = p[p["kind"] != "omega"]
        return out


# --------------------------------------------------------------------------------------
# candidates
# --------------------------------------------------------------------------------------
def candidate_relations(subjects: pd.DataFrame, parameters, covariates=None,
                        max_levels=4) -> tuple[list, list]:
    """(relations, skipped) for the subjects table: see the module. ``skipped`` lists
    (covariate, reason)."""
    table = subjects
    if covariates is None:
        covariates = [c for c in table.columns if c not in SKIP_COLUMNS]
    else:
        covariates = [covariates] if isinstance(covariates, str) else list(covariates)
        covariates = [c.strip() for c in ",".join(covariates).split(",") if c.strip()]
        unknown = [c for c in covariates if c not in table.columns]
        if unknown:
            raise SettingsError(f"covariate(s) {unknown} are not columns of the subjects "
                                f"table (columns: {list(table.columns)})")
    relations, skipped = [], []
    for cov in covariates:
        col = table[cov]
        if col.isna().any() or (col.astype(str).str.strip() == "").any():
            skipped.append((cov, f"missing for {int(col.isna().sum())} participant(s)"))
            continue
        num = pd.to_numeric(col, errors="coerce")
        levels = list(pd.unique(col.astype(str)))
        if len(levels) < 2:
            skipped.append((cov, "the same value for every participant"))
            continue
        if num.notna().all() and len(levels) > 2:
            form = "power" if (num > 0).all() else "exponential"
            relations += [Relation(p, cov, form) for p in parameters]
        elif len(levels) <= max_levels:
            counts = col.astype(str).value_counts()
            ref = sorted(levels, key=lambda v: (-counts[v], v))[0]
            rest = tuple(v for v in levels if v != ref)
            relations += [Relation(p, cov, "categorical", rest, ref) for p in parameters]
        else:
            skipped.append((cov, f"{len(levels)} categories (more than {max_levels})"))
    return relations, skipped


def with_indicators(data: FitData, relations) -> FitData:
    """The data set with the 0/1 indicator columns of the categorical relations."""
    subjects = data.subjects.copy()
    for r in relations:
        if r.form == "categorical":
            for lv in r.levels:
                subjects[indicator(r.covariate, lv)] = (
                    subjects[r.covariate].astype(str) == lv).astype(float)
    return replace(data, subjects=subjects)


# --------------------------------------------------------------------------------------
# the fits (module level: they run on Dask workers)
# --------------------------------------------------------------------------------------
def fit_models(data: FitData, model: ModelRef, options: dict, models) -> list:
    """Fit each model of ``models`` (tuples of Relation): −2LL, status, estimates."""
    from ctkinetics.estimation.population import fit_population

    out = []
    for relations in models:
        t0 = time.perf_counter()
        effects = [e for r in relations for e in r.effects()]
        try:
            res = fit_population(data, model.load(), covariates=effects or None,
                                 covariance=False, **options)
        except (SettingsError, ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            out.append(dict(ofv=np.nan, status="failed", message=f"{type(exc).__name__}: {exc}",
                            estimates={}, seconds=time.perf_counter() - t0))
            continue
        status = "failed" if res.failed else "not_converged" if not res.converged else "ok"
        out.append(dict(ofv=float(res.ofv), status=status, message=res.message,
                        estimates={} if res.failed else res.estimates(),
                        seconds=time.perf_counter() - t0))
    return out


def _warm(options, estimates):
    """Options started from a model's estimates (θ, σ, ω²; β start at 0)."""
    if not estimates:
        return dict(options)
    opts = dict(options)
    init = dict(options.get("init") or {})
    omega = dict(options.get("omega_init") or {})
    for k, v in estimates.items():
        if not np.isfinite(v):
            continue
        if k.startswith("omega2_"):
            if v > 0:
                omega[k[len("omega2_"):]] = float(v)
        elif not k.startswith(("beta_", "omega_")):
            init[k] = float(v)
    opts["init"], opts["omega_init"] = init, omega
    return opts


def _p(dofv, df):
    from scipy.special import chdtrc

    return float(chdtrc(df, dofv)) if np.isfinite(dofv) and dofv > 0 else 1.0


# --------------------------------------------------------------------------------------
def covariate_search(dataset, model, *, parameters=None, covariates=None, relations=None,
                     p_forward=0.05, p_backward=0.01, max_levels=4, executor=None,
                     progress=None, covariance=True, **fit_options) -> CovariateSearchResult:
    """Stepwise forward inclusion / backward elimination (see the module).

    Parameters
    ----------
    dataset, model
        As :func:`~ctkinetics.estimation.population.fit_population`.
    parameters : list of str or "A,B", optional
        Parameters the covariates may act on (default: those with a random effect).
    covariates : list of str or "a,b", optional
        Columns of the subjects table (default: all but subject and dose_level).
    relations : list of Relation, optional
        Explicit candidates instead of ``parameters`` × ``covariates``.
    p_forward, p_backward : float
        Significance levels of inclusion (0.05) and of keeping a relation (0.01).
    max_levels : int
        A covariate with at most this many distinct values (or text) is categorical.
    executor : optional
        Where the candidate fits of a step run (default this process).
    covariance : bool
        Covariance step of the final model.
    **fit_options
        The population fit's options (random_effects, method, blq, error, omega, analytes,
        fixed, estimate, init, omega_init); ``covariates`` of the base model are not
        allowed (the search builds them).
    """
    from ctkinetics.estimation.fitproblem import parse_names
    from ctkinetics.estimation.population import fit_population

    if "covariance" in fit_options or "progress" in fit_options:
        fit_options = {k: v for k, v in fit_options.items() if k not in ("covariance",
                                                                            "progress")}
    say = progress or (lambda s: None)
    if not (0 < p_backward <= p_forward < 1):
        raise SettingsError(f"need 0 < p_backward <= p_forward < 1 (got {p_backward}, "
                            f"{p_forward})")
    data, ref = FitData.of(dataset, strata=()), ModelRef.of(model)
    log, skipped = [], []
    if relations is None:
        params = parse_names(parameters) if parameters is not None else (
            parse_names(fit_options.get("random_effects")) or _random_default(data, ref,
                                                                               fit_options))
        relations, skipped = candidate_relations(data.subjects, params, covariates,
                                                 max_levels)
    for cov, why in skipped:
        log.append(_row(0, "skipped", cov, 0, np.nan, np.nan, np.nan, np.nan, np.nan, "",
                        False, (), why))
    if not relations:
        raise SettingsError("no candidate covariate relation to test"
                            + (f" ({'; '.join(f'{c}: {w}' for c, w in skipped)})"
                               if skipped else ""))
    data = with_indicators(data, relations)
    t0 = time.perf_counter()
    say(f"covariate search: {len(relations)} candidate relations")
    run = _Steps(data, ref, fit_options, executor, log, say)
    base = run.fit([()], None)[0]
    if base["status"] == "failed":
        raise SettingsError(f"the base model could not be fitted: {base['message']}")
    current, cur = run.forward(relations, base, p_forward)
    current, cur = run.backward(current, cur, p_backward)
    effects = [e for r in current for e in r.effects()]
    final = fit_population(data, ref.load(), covariates=effects or None,
                           covariance=covariance, **_warm(fit_options, cur["estimates"]))
    settings = dict(p_forward=p_forward, p_backward=p_backward, max_levels=max_levels,
                    candidates=[r.name for r in relations],
                    skipped={c: w for c, w in skipped}, seconds=time.perf_counter() - t0,
                    base_ofv=base["ofv"], final_ofv=final.ofv, model=final.model)
    return CovariateSearchResult([r.name for r in current],
                                 pd.DataFrame(log, columns=LOG_COLUMNS), final, settings,
                                 tuple(current))


class _Steps:
    """The forward and backward steps of a search: each fits its candidate models (on the
    executor, warm-started from the current model) and logs every fit."""

    def __init__(self, data, ref, fit_options, executor, log, say):
        self.data, self.ref, self.options = data, ref, fit_options
        self.executor, self.log, self.say = executor, log, say
        self.step = 0

    def fit(self, models, start) -> list:
        out = []
        run_tasks(self.executor, fit_models,
                  (self.data, self.ref, _warm(self.options, start)), models, out.extend)
        return out

    def forward(self, relations, cur, p_forward):
        """Forward inclusion from the base model: (relations kept, their fit)."""
        current = ()
        while True:
            todo = [r for r in relations if r not in current]
            if not todo:
                return current, cur
            self.step += 1
            fits = self.fit([current + (r,) for r in todo], cur["estimates"])
            best = _best_forward(todo, fits, cur["ofv"], p_forward)
            for r, f in zip(todo, fits):
                d = cur["ofv"] - f["ofv"]
                chosen = best is not None and r == todo[best]
                self.log.append(_row(self.step, "forward", r.name, r.df, f["ofv"], cur["ofv"],
                                     d, _p(d, r.df), p_forward, f["status"], chosen,
                                     current + ((r,) if chosen else ()), f["message"]))
            if best is None:
                self.say(f"forward step {self.step}: nothing significant at p < {p_forward}")
                return current, cur
            current, cur = current + (todo[best],), fits[best]
            self.say(f"forward step {self.step}: added {todo[best].name} "
                     f"(-2LL {cur['ofv']:.3f})")

    def backward(self, current, cur, p_backward):
        """Backward elimination while a relation is not significant at ``p_backward``."""
        while current:
            self.step += 1
            reduced = [tuple(r for r in current if r != drop) for drop in current]
            fits = self.fit(reduced, cur["estimates"])
            rise = [f["ofv"] - cur["ofv"] if f["status"] != "failed" else np.inf
                    for f in fits]
            pvals = [_p(d, r.df) for d, r in zip(rise, current)]
            k = int(np.argmax(pvals))
            remove = pvals[k] >= p_backward and np.isfinite(rise[k])
            for j, (r, f) in enumerate(zip(current, fits)):
                chosen = remove and j == k
                self.log.append(_row(self.step, "backward", r.name, r.df, f["ofv"],
                                     cur["ofv"], rise[j], pvals[j], p_backward, f["status"],
                                     chosen, reduced[j] if chosen else current,
                                     f["message"]))
            if not remove:
                self.say(f"backward step {self.step}: every relation significant at "
                         f"p < {p_backward}")
                break
            self.say(f"backward step {self.step}: removed {current[k].name}")
            current, cur = reduced[k], fits[k]
        return current, cur


def _random_default(data, ref, options):
    """The parameters with a random effect by default: the estimated model parameters."""
    from ctkinetics.estimation.fitproblem import FitProblem

    p = FitProblem.build(data, ref.load(), analytes=options.get("analytes"),
                         blq=options.get("blq", "M3"), error=options.get("error",
                                                                         "proportional"),
                         estimate=options.get("estimate"), fixed=options.get("fixed"))
    return p.estimated


def _best_forward(todo, fits, base_ofv, p_forward):
    """Index of the candidate to include (largest drop, significant, fit usable) or None."""
    best, drop = None, -np.inf
    for j, (r, f) in enumerate(zip(todo, fits)):
        if f["status"] == "failed" or not np.isfinite(f["ofv"]):
            continue
        d = base_ofv - f["ofv"]
        if _p(d, r.df) < p_forward and d > drop:
            best, drop = j, d
    return best


def _row(step, direction, relation, df, ofv, base, dofv, p, threshold, status, selected,
         model, message):
    return dict(step=step, direction=direction, relation=relation, df=df, ofv=ofv,
                base_ofv=base, dofv=dofv, p_value=p, threshold=threshold, status=status,
                selected=bool(selected), model=";".join(r.name for r in model),
                message=message)


__all__ = ["covariate_search", "CovariateSearchResult", "Relation", "candidate_relations",
           "FORMS", "LOG_COLUMNS"]
