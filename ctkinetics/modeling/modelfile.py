"""Reading a model file (TOML) into a :class:`~ctkinetics.modeling.model.Model`.

A model file is data: metadata, parameters, covariates, definitions, states, phases with
ODE right-hand sides and optional closed-form solutions, observables per analyte kind and
derived quantities. Its structure and value types are checked by its schema
(:mod:`ctkinetics.modeling.modelfile_schema` through the settings home :mod:`ctkinetics.schema`),
every expression by the safe expression language (:mod:`ctkinetics.modeling.expressions`), the
model's own rules (names, phases, kinds) here; all problems of a file are raised together as
one :class:`~ctkinetics.errors.ModelFileError`, each naming the file, the line, the key and the
token.

Layout (see ``models/stein2019.toml`` for a complete example)::

    name = "stein2019"            # identifier; lower case, digits, underscore
    title = "..."; reference = "..."; population = "..."; time_unit = "day"
    [parameters.Cmax]             # default, lower, upper, unit, scale, description, source, omega2,
                                  # estimate (true/false: estimated by default in fits)
    [covariates.dose]             # default, unit, description, time_varying, interpolation
    [definitions]                 # ordered: name = "expression of parameters/covariates"
    [states.E]                    # initial = "expression", unit, description, positive
                                  # (true: never below 0; the solver may integrate ln E)
    [[phases]]                    # name, end = "switch time expression" (not on the last)
    ode = { E = "..." }           # dX/dt for every state
    solution = { E = "..." }      # optional closed form for every state (t, tau)
    [observables]                 # kind = "expression of states"  (qpcr, flow, bcell, conc)
    [dosing]                      # optional: state = "amount added at each later dose" (amt)
    [derived.R0]                  # expr, unit, description
    [solver]                      # rtol, atol, max_step (the longest step, time units)
"""
from __future__ import annotations

import math
import re

from ctkinetics.errors import ModelFileError, SettingProblem
from ctkinetics.modeling.expressions import FUNCTIONS, TIME_NAMES, compile_expression
from ctkinetics.modeling.parts import Covariate, Derived, Parameter, Phase, ResidualError, State

#: Analyte kinds an observable may be declared for (as ``Analyte.kind`` in ctkinetics.data).
OBSERVABLE_KINDS = ("qpcr", "flow", "bcell", "conc")

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
#: The dose amount, the name dosing expressions read (reserved in every model file).
DOSE_AMOUNT = "amt"
MAX_FILE_BYTES = 200_000


def parse_model_file(path) -> dict:
    """Read and validate a model file; return the keyword arguments of ``Model``."""
    from ctkinetics.schema import TomlSyntaxError, read_toml

    try:
        doc = read_toml(path, "model file", MAX_FILE_BYTES)
    except TomlSyntaxError as exc:
        raise ModelFileError.from_problems([exc.problem]) from None
    return _model_arguments(doc)


def parse_model_text(text: str, file: str = "<model>") -> dict:
    """Validate the text of a model file; return the keyword arguments of ``Model``."""
    from ctkinetics.schema import TomlDocument, TomlSyntaxError

    try:
        doc = TomlDocument.parse(text, file)
    except TomlSyntaxError as exc:
        raise ModelFileError.from_problems([exc.problem]) from None
    return _model_arguments(doc)


def _model_arguments(doc) -> dict:
    """Structure and types by the schema (every problem at once), then the model's rules and
    expressions (every problem at once)."""
    from ctkinetics.modeling.modelfile_schema import ModelFile
    from ctkinetics.schema import Problems, validate

    problems = Problems(doc)
    spec = validate(doc, ModelFile, problems)
    problems.raise_if_any(ModelFileError)
    arguments = _Reader(doc, problems).read(spec)
    problems.raise_if_any(ModelFileError)
    return arguments


class _Reader:
    """The model's own rules on a validated model file; problems collected, not raised."""

    def __init__(self, doc, problems):
        self.doc, self.problems, self.file = doc, problems, doc.file
        self.taken: set[str] = set(TIME_NAMES) | {DOSE_AMOUNT}

    def fail(self, loc, message, token=None):
        self.problems.add(loc, message, token)

    def symbol(self, name: str, where: str, loc) -> None:
        """A new name (parameter, covariate, definition, state): an identifier, used once,
        neither reserved nor a function name."""
        if not _NAME_RE.match(name):
            self.fail(loc, f"{where} name '{name}' is not an identifier (letter first, then letters, "
                           "digits, _; at most 32)", name[:40])
        elif name in self.taken:
            self.fail(loc, f"{where} name '{name}' is used twice or is reserved", name)
        elif name in FUNCTIONS:
            self.fail(loc, f"{where} name '{name}' is a function name", name)
        self.taken.add(name)

    def expr(self, text, allowed, loc):
        """The compiled expression at ``loc`` (None, with the problem recorded, when refused)."""
        from ctkinetics.schema import dotted

        try:
            return compile_expression(text, allowed, file=self.file, line=self.doc.line(loc))
        except ModelFileError as exc:
            for p in exc.problems:
                self.problems.add_problem(SettingProblem(self.file, p.row, dotted(loc), p.message, p.token))
            return None

    def read(self, spec) -> dict:
        parameters = self.parameters(spec.parameters)
        covariates = self.covariates(spec.covariates or {})
        base = set(spec.parameters) | {c.name for c in covariates}  # a refused parameter is still declared
        definitions = []
        for name, text in (spec.definitions or {}).items():  # ordered: each may use the ones before
            self.symbol(name, "definition", ("definitions", name))
            definitions.append((name, self.expr(text, base, ("definitions", name))))
            base = base | {name}
        states = self.states(spec.states, base)
        names = [s.name for s in states]
        return dict(
            name=spec.name, title=spec.title, reference=spec.reference, doi=spec.doi or "",
            population=spec.population or "", description=spec.description or "",
            time_unit=spec.time_unit or "day", horizon=float(spec.horizon or 365.0),
            parameters=tuple(parameters), covariate_specs=tuple(covariates),
            definitions=tuple(definitions), states=tuple(states),
            phases=self.phases(spec.phases, names, base),
            observable_exprs=self.observables(spec.observables, base | set(names) | {"t"}),
            dosing=self.dosing(spec.dosing or {}, names, base | set(names) | {DOSE_AMOUNT}),
            derived_specs=self.derived(spec.derived or {}, base),
            rtol=float(spec.solver.rtol or 1e-6) if spec.solver else 1e-6,
            atol=float(spec.solver.atol or 1e-12) if spec.solver else 1e-12,
            max_step=float(spec.solver.max_step) if spec.solver and spec.solver.max_step
            else math.inf,
            source_file=self.file,
            residual_error=self.residual_error(spec.residual_error or {}, spec.observables),
        )

    def parameters(self, table) -> list:
        out = []
        for name, p in table.items():
            self.symbol(name, "parameter", ("parameters", name))
            try:
                out.append(Parameter(name=name, default=p.default, lower=p.lower, upper=p.upper,
                                     unit=p.unit if p.unit is not None else "1", scale=p.scale or "log",
                                     description=p.description or "", source=p.source, omega2=p.omega2,
                                     estimate=True if p.estimate is None else p.estimate))
            except ValueError as exc:
                self.fail(("parameters", name), str(exc), name)
        return out

    def covariates(self, table) -> list:
        for name in table:
            self.symbol(name, "covariate", ("covariates", name))
        return [Covariate(name, c.default, c.unit if c.unit is not None else "1", c.description or "",
                          bool(c.time_varying), c.interpolation or "step") for name, c in table.items()]

    def states(self, table, base) -> list:
        out = []
        for name, s in table.items():
            self.symbol(name, "state", ("states", name))
            out.append(State(name, self.expr(s.initial, base, ("states", name, "initial")), s.unit or "",
                             s.description or "", bool(s.positive)))
        return out

    def phases(self, phases, states, base) -> tuple:
        """Every phase has an ODE for every state; all but the last end at a switch time; a
        closed form for every phase or for none."""
        dynamic = base | set(states) | set(TIME_NAMES)
        closed = base | set(TIME_NAMES)
        out = []
        for i, p in enumerate(phases):
            name = p.name or f"phase{i + 1}"
            last = i == len(phases) - 1
            if last and p.end is not None:
                self.fail(("phases", i, "end"), f"the last phase ('{name}') is open: it has no 'end'", "end")
            if not last and p.end is None:
                self.fail(("phases", i), f"phase '{name}' needs an 'end' (switch time expression)", name)
            end = None if last or p.end is None else self.expr(p.end, base, ("phases", i, "end"))
            ode = self.state_map(p.ode, states, ("phases", i, "ode"), f"phase '{name}' ode", dynamic)
            solution = None if p.solution is None else self.state_map(
                p.solution, states, ("phases", i, "solution"), f"phase '{name}' solution", closed)
            out.append(Phase(name, end, ode, solution))
        if len({p.solution is None for p in out}) > 1:
            self.fail(("phases",), "a closed-form 'solution' must be given for every phase or for none", "solution")
        return tuple(out)

    def state_map(self, table, states, loc, where, allowed) -> dict:
        for name in table:
            if name not in states:
                self.fail(loc + (name,), f"{where}: '{name}' is not a state", name)
        for name in states:
            if name not in table:
                self.fail(loc, f"{where}: no expression for state '{name}'", name)
        return {s: self.expr(table[s], allowed, loc + (s,)) for s in states if s in table}

    def observables(self, table, allowed) -> dict:
        out = {}
        for kind, text in table.items():
            if kind not in OBSERVABLE_KINDS:
                self.fail(("observables", kind), f"observable kind '{kind}' unknown (allowed: "
                                                 f"{', '.join(OBSERVABLE_KINDS)})", kind)
            else:
                out[kind] = self.expr(text, allowed, ("observables", kind))
        return out

    def dosing(self, table, states, allowed) -> dict:
        """What a dose after the first (the initial state) adds to the states."""
        out = {}
        for name, text in table.items():
            if name not in states:
                self.fail(("dosing", name), f"[dosing]: '{name}' is not a state", name[:40])
            else:
                out[name] = self.expr(text, allowed, ("dosing", name))
        return out

    def residual_error(self, table, observables) -> tuple:
        """``[residual_error.<kind>]``: one per observable the model declares."""
        out = []
        for kind, r in table.items():
            if kind not in observables:
                self.fail(("residual_error", kind), f"[residual_error.{kind}]: '{kind}' is not an "
                          f"observable of the model (it has {', '.join(observables)})", kind[:40])
                continue
            sigmas = {k: float(getattr(r, k)) for k in ("sigma", "sigma_prop", "sigma_add")
                      if getattr(r, k) is not None}
            out.append(ResidualError(kind, r.model, sigmas, r.source, r.unit or "", r.description or ""))
        return tuple(out)

    def derived(self, table, base) -> tuple:
        out = []
        for name, d in table.items():
            if not _NAME_RE.match(name):
                self.fail(("derived", name), f"derived name '{name}' is not an identifier", name[:40])
            out.append(Derived(name, self.expr(d.expr, base, ("derived", name)), d.unit or "", d.description or ""))
        return tuple(out)
