"""The :class:`Model`: an immutable kinetic model read from a model file.

A model is data (parameters, states, phases, observables) plus pure engines: the closed
form (:mod:`ctkinetics.modeling.solvers`, numpy), the compiled ODE engine
(:mod:`ctkinetics.modeling.compiled`: generated native kernels + Radau IIA with exact
sensitivities) and, as a reference, SciPy's LSODA (``method="lsoda"``). ``predict`` is
vectorised: scalar parameters give arrays of shape (T,); parameters (or covariates) given as
arrays of shape (n,) give (n, T). :meth:`Model.solve` adds sensitivities, per-subject
(ragged) sampling times and the solver status of every subject.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.modeling import solvers
from ctkinetics.modeling.expressions import Expression, quiet
from ctkinetics.modeling.parts import Covariate, Derived, Parameter, Phase, State

#: ``auto``: closed form when declared, else the compiled ODE engine; ``lsoda``: SciPy's
#: LSODA (the slow reference the compiled engine is tested against).
METHODS = ("auto", "closed", "ode", "lsoda")


@dataclass(frozen=True, eq=False)
class Model:
    """A kinetic model (see ``models/*.toml`` and :mod:`ctkinetics.modeling.modelfile`).

    Attributes
    ----------
    name, title, reference, doi, population, description : str
        Identity and provenance of the model.
    time_unit : str
        Unit of ``t`` (``day`` for the CAR-T models, ``hour`` for ``onecpt_oral``).
    horizon : float
        Default end of a simulation, in ``time_unit``.
    parameters : tuple of Parameter
    covariate_specs : tuple of Covariate
    states : tuple of State
    phases : tuple of Phase
    derived_specs : tuple of Derived
    residual_error : tuple of ResidualError
        The typical residual error of each observable the file declares
        (``[residual_error.<kind>]``; empty when it declares none).

    Examples
    --------
    >>> from ctkinetics.modeling import load_model
    >>> m = load_model("stein2019")
    >>> round(float(m.predict(None, [9.3])["qpcr"][0]))
    24000
    """

    name: str
    title: str
    reference: str
    parameters: tuple
    states: tuple
    phases: tuple
    observable_exprs: Mapping[str, Expression]
    covariate_specs: tuple = ()
    definitions: tuple = ()
    #: state -> Expression added to it at each dose after the first (reads ``amt``); empty
    #: when the model file has no ``[dosing]`` table (one infusion only)
    dosing: Mapping[str, Expression] = field(default_factory=dict)
    derived_specs: tuple = ()
    doi: str = ""
    population: str = ""
    description: str = ""
    time_unit: str = "day"
    horizon: float = 365.0
    rtol: float = 1e-6
    atol: float = 1e-12
    #: integrate the states declared ``positive`` in log coordinates once established (the
    #: compiled engine; False: every state in its own units, for comparison)
    log_states: bool = True
    #: the longest ODE step (the model file's [solver] max_step; inf: no bound)
    max_step: float = math.inf
    source_file: str = ""
    residual_error: tuple = ()
    _param_index: Mapping = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "observable_exprs", MappingProxyType(dict(self.observable_exprs)))
        object.__setattr__(self, "dosing", MappingProxyType(dict(self.dosing)))
        object.__setattr__(self, "_param_index", MappingProxyType({p.name: p for p in self.parameters}))

    # ---- description -------------------------------------------------------------------
    @property
    def param_names(self) -> tuple:
        return tuple(p.name for p in self.parameters)

    @property
    def state_names(self) -> tuple:
        return tuple(s.name for s in self.states)

    @property
    def covariates(self) -> Mapping[str, float]:
        """Covariates the model reads, name -> default value."""
        return MappingProxyType({c.name: c.default for c in self.covariate_specs})

    @property
    def observables(self) -> Mapping[str, str]:
        """Observable kind (qpcr, flow, bcell, conc) -> expression text."""
        return MappingProxyType({k: e.text for k, e in self.observable_exprs.items()})

    @property
    def has_closed_form(self) -> bool:
        return all(p.solution is not None for p in self.phases)

    @property
    def switch_names(self) -> tuple:
        """Expressions of the switch times between phases (e.g. ``('Tmax',)``)."""
        return tuple(p.end.text for p in self.phases[:-1])

    def parameter(self, name: str) -> Parameter:
        try:
            return self._param_index[name]
        except KeyError:
            raise SettingsError(f"model {self.name} has no parameter '{name}' (it has: {', '.join(self.param_names)})") from None

    def defaults(self) -> dict:
        """Typical parameter values, name -> float."""
        return {p.name: p.default for p in self.parameters}

    def to_frame(self):
        """Parameter table: name, default, lower, upper, unit, scale, omega2, description, source."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "name": p.name, "default": p.default, "lower": p.lower, "upper": p.upper,
                    "unit": p.unit, "scale": p.scale, "omega2": p.omega2,
                    "description": p.description, "source": p.source,
                }
                for p in self.parameters
            ]
        )

    # ---- evaluation --------------------------------------------------------------------
    def environment(self, params=None, covariates=None):
        """Values of parameters, covariates and definitions; returns (env, n or None).

        Missing parameters take their defaults; ``n`` is the number of subjects when any
        value is an array of shape (n,), else None.
        """
        env = {}
        given = dict(params or {})
        for name in given:
            if name not in self._param_index:
                raise SettingsError(f"model {self.name} has no parameter '{name}' (it has: {', '.join(self.param_names)})")
        for p in self.parameters:
            env[p.name] = _value(given.get(p.name, p.default), p.name)
        cov_given = dict(covariates or {})
        for c in self.covariate_specs:
            env[c.name] = _value(cov_given.get(c.name, c.default), c.name)
        # Unknown covariates are ignored on purpose: a dataset carries more than a model reads.
        lengths = {v.shape[0] for v in env.values() if isinstance(v, np.ndarray)}
        if len(lengths) > 1:
            raise SettingsError(f"parameter/covariate arrays of different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else None
        for dname, expression in self.definitions:
            env[dname] = expression(env)
        return env, n

    def with_tolerances(self, rtol=None, atol=None, log_states=None, max_step=None) -> "Model":
        """A copy of the model solved with other solver settings: tolerances (e.g. a tight
        reference), its ``positive`` states in their own units (``log_states=False``), another
        longest step (``max_step``, inf: none)."""
        import dataclasses

        return dataclasses.replace(self, rtol=self.rtol if rtol is None else float(rtol),
                                   atol=self.atol if atol is None else float(atol),
                                   log_states=self.log_states if log_states is None
                                   else bool(log_states),
                                   max_step=self.max_step if max_step is None else float(max_step))

    def predict_states(self, params=None, times=None, covariates=None, method="auto") -> dict:
        """State trajectories, state -> array (T,) or (n, T). See :meth:`predict`."""
        env, n, t = self._prepare(params, times, covariates)
        with quiet():
            return self._solve(env, n, t, method)

    def solve(self, params=None, times=None, covariates=None, observables=None, *,
              sensitivities=False, wrt=None, method="auto", max_steps=100_000, doses=None):
        """Observables (and optionally their parameter derivatives) with each subject's
        solver status — the engine behind :meth:`predict` and the fitters.

        Parameters
        ----------
        params, covariates : mapping name -> float or array (n,), optional
            As :meth:`predict`.
        times : array-like (T,), or a sequence of n arrays
            Shared times, or each subject's own times (*ragged*: outputs are then flat,
            subject after subject, delimited by ``offsets``).
        observables : iterable of str, optional
        sensitivities : bool
            Also d observable / d parameter, exact: symbolic derivatives of the closed form,
            forward sensitivities of the compiled ODE (derivative of the computed solution).
        wrt : sequence of parameter names, optional
            Parameters of the derivatives (default every parameter, model order).
        method : {'auto', 'closed', 'ode', 'lsoda'}
            ``lsoda`` (reference) has no sensitivities and no ragged times.
        max_steps : int
            ODE steps allowed per subject before it is stopped with a status.
        doses : array (m, 2) or a sequence of n such arrays, optional
            Doses after the first infusion (the first is the initial state): rows (time since
            the first infusion, amount); what a dose does to the states is the model file's
            ``[dosing]`` table. A covariate may be given as a
            :class:`~ctkinetics.modeling.solution.TimeCourse` (or one per subject) when the
            model declares it time-varying. Doses or time courses are solved as an ODE.

        Returns
        -------
        ModelSolution
        """
        from ctkinetics.modeling.solution import solve_model

        return solve_model(self, params, times, covariates, observables, sensitivities, wrt,
                           method, max_steps, doses)

    def sensitivities(self, params=None, times=None, covariates=None, observables=None,
                      wrt=None, method="auto"):
        """(values, derivs): :meth:`predict`'s values and their derivatives with respect to
        the parameters ``wrt`` (default all), dict kind -> array of shape values.shape + (q,).
        See :meth:`solve`."""
        sol = self.solve(params, times, covariates, observables, sensitivities=True, wrt=wrt,
                         method=method)
        return sol.values, sol.derivs

    def predict(self, params=None, times=None, covariates=None, observables=None, method="auto",
                doses=None) -> dict:
        """Predicted observables at ``times``.

        Parameters
        ----------
        params : mapping name -> float or array (n,), optional
            Parameter values (missing ones take their defaults). Arrays give n subjects.
        times : array-like of float
            Times since infusion (``time_unit``), >= 0, any order.
        covariates : mapping name -> float or array (n,), optional
            E.g. ``{'dose': 4.5e8}``; missing ones take the model's defaults.
        observables : iterable of str, optional
            Kinds to compute (default: all the model declares).
        method : {'auto', 'closed', 'ode'}
            'auto' uses the closed form when the model declares one, else the ODE.

        doses : optional
            Doses after the first infusion (see :meth:`solve`); with doses or time-varying
            covariates (:class:`~ctkinetics.modeling.solution.TimeCourse`) the ODE is solved.

        Returns
        -------
        dict kind -> ndarray
            Shape (T,) for scalar inputs, (n, T) when any input is an array of shape (n,).
        """
        if doses is not None or _has_time_course(covariates):
            return self.solve(params, times, covariates, observables, doses=doses,
                              method="ode" if method == "auto" else method).values
        env, n, t = self._prepare(params, times, covariates)
        kinds = list(self.observable_exprs) if observables is None else list(observables)
        for k in kinds:
            if k not in self.observable_exprs:
                raise SettingsError(f"model {self.name} has no observable '{k}' (it has: {', '.join(self.observable_exprs)})")
        with quiet():
            return self._observables(env, n, t, self._solve(env, n, t, method), kinds)

    def observe(self, states, params=None, times=None, covariates=None, observables=None) -> dict:
        """The observables from states already solved (:meth:`predict_states` of the same
        times and covariates), evaluated as :meth:`predict` evaluates them: a parameter read
        only by the observables (an assay's scale) can change without a new solve."""
        env, n, t = self._prepare(params, times, covariates)
        kinds = list(self.observable_exprs) if observables is None else list(observables)
        with quiet():
            return self._observables(env, n, t, states, kinds)

    def _observables(self, env, n, t, states, kinds) -> dict:
        if n is None:
            local, shape = dict(env, t=t), (t.size,)
        else:
            local = {k: (v[:, None] if isinstance(v, np.ndarray) else v) for k, v in env.items()}
            local["t"], shape = t[None, :], (n, t.size)
        local.update(states)
        out = {}
        for k in kinds:
            value = np.asarray(self.observable_exprs[k](local), dtype=float)
            out[k] = value if value.shape == shape else np.array(np.broadcast_to(value, shape))
        return out

    def derived(self, params=None, covariates=None) -> dict:
        """Derived quantities (R0, rho, doubling time, half-lives, AUC0-inf ...).

        Returns a dict name -> float (scalar inputs) or ndarray (n,) (array inputs).
        """
        env, n = self.environment(params, covariates)
        out = {}
        for d in self.derived_specs:
            with quiet():
                value = np.asarray(d.expression(env), dtype=float)
            out[d.name] = float(value) if n is None and value.ndim == 0 else np.broadcast_to(value, (n,)).copy() if n else value
        return out

    def _prepare(self, params, times, covariates):
        env, n = self.environment(params, covariates)
        if times is None:
            raise SettingsError("predict needs the times at which to predict")
        t = np.atleast_1d(np.asarray(times, dtype=float))
        if t.ndim != 1:
            raise SettingsError("times must be a 1-D sequence")
        if t.size and not (t.min() >= 0 and t.max() < np.inf):  # also rejects NaN
            raise SettingsError(f"times must be finite and >= 0 ({self.time_unit} since infusion/dose)")
        return env, n, t

    def _solve(self, env, n, t, method):
        if method not in METHODS:
            raise SettingsError(f"method must be one of {METHODS}, got {method!r}")
        if method == "closed" and not self.has_closed_form:
            raise SettingsError(f"model {self.name} has no closed form")
        if method == "lsoda":
            states = solvers.ode(self.phases, self.states, env, t, n or 1, self.rtol, self.atol)
            return {s: v[0] for s, v in states.items()} if n is None else states
        if method == "ode" or not self.has_closed_form:
            from ctkinetics.modeling.solution import ode_states

            states = ode_states(self, env, n or 1, t)
            return {s: v[0] for s, v in states.items()} if n is None else states
        return solvers.closed_form(self.phases, self.state_names, env, t, n)


def _has_time_course(covariates) -> bool:
    from ctkinetics.modeling.solution import TimeCourse

    for v in (covariates or {}).values():
        if isinstance(v, TimeCourse) or (isinstance(v, (list, tuple)) and v
                                         and isinstance(v[0], TimeCourse)):
            return True
    return False


def _value(v, name):
    if type(v) is float:
        return v
    v = getattr(v, "value", v)  # lmfit.Parameter and similar
    if np.ndim(v) == 0:
        return float(v)
    arr = np.asarray(v, dtype=float)
    if arr.ndim != 1:
        raise SettingsError(f"'{name}' must be a number or a 1-D array (one value per subject)")
    return arr


__all__ = ["Model", "Parameter", "Covariate", "State", "Phase", "Derived"]
