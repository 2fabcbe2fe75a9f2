"""Reading a model file (TOML) into a :class:`~ctkinetics.modeling.model.Model`.

A model file is data: metadata, parameters, covariates, definitions, states, phases with
ODE right-hand sides and optional closed-form solutions, observables per analyte kind and
derived quantities. Every expression goes through the safe expression language
(:mod:`ctkinetics.modeling.expressions`); every problem is a
:class:`~ctkinetics.errors.ModelFileError` naming the file, the line and the token.

Layout (see ``models/stein2019.toml`` for a complete example)::

    name = "stein2019"            # identifier; lower case, digits, underscore
    title = "..."; reference = "..."; population = "..."; time_unit = "day"
    [parameters.Cmax]             # default, lower, upper, unit, scale, description, source, omega2,
                                  # estimate (true/false: estimated by default in fits)
    [covariates.dose]             # default, unit, description, time_varying, interpolation
    [definitions]                 # ordered: name = "expression of parameters/covariates"
    [states.E]                    # initial = "expression", unit, description
    [[phases]]                    # name, end = "switch time expression" (not on the last)
    ode = { E = "..." }           # dX/dt for every state
    solution = { E = "..." }      # optional closed form for every state (t, tau)
    [observables]                 # kind = "expression of states"  (qpcr, flow, bcell, conc)
    [dosing]                      # optional: state = "amount added at each later dose" (amt)
    [derived.R0]                  # expr, unit, description
    [solver]                      # rtol, atol
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from ctkinetics.errors import ModelFileError
from ctkinetics.modeling.expressions import TIME_NAMES, compile_expression
from ctkinetics.modeling.parts import Covariate, Derived, Parameter, Phase, State

#: Analyte kinds an observable may be declared for (as ``Analyte.kind`` in ctkinetics.data).
OBSERVABLE_KINDS = ("qpcr", "flow", "bcell", "conc")

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOP_KEYS = {
    "name", "title", "reference", "doi", "population", "description", "time_unit", "horizon",
    "parameters", "covariates", "definitions", "states", "phases", "observables", "derived",
    "solver", "dosing",
}
_COVARIATE_KEYS = {"default", "unit", "description", "time_varying", "interpolation"}
#: The dose amount, the name dosing expressions read (reserved in every model file).
DOSE_AMOUNT = "amt"
_PARAM_KEYS = {"default", "lower", "upper", "unit", "scale", "description", "source", "omega2",
               "estimate"}
MAX_FILE_BYTES = 200_000


class _Source:
    """The raw text of a model file, to find the line a key or an expression sits on."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.lines = text.splitlines()

    def line_of(self, *needles: str) -> int | None:
        for needle in needles:
            if not needle:
                continue
            for i, line in enumerate(self.lines, start=1):
                if needle in line:
                    return i
        return None

    def key_line(self, key: str, value=None) -> int | None:
        if isinstance(value, str) and value.strip():
            found = self.line_of(value.strip()[:60])
            if found:
                return found
        pattern = re.compile(rf"(^|[\s\[.{{,]){re.escape(key)}\s*(=|\]|\.)")
        for i, line in enumerate(self.lines, start=1):
            if pattern.search(line):
                return i
        return None

    def error(self, message, key=None, value=None, token=None) -> ModelFileError:
        line = self.key_line(key, value) if key else None
        return ModelFileError(self.file, message, line, token)


def parse_model_file(path) -> dict:
    """Read and validate a model file; return the keyword arguments of ``Model``."""
    path = Path(path)
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(file, f"cannot read the model file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ModelFileError(file, f"model file larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(file, "model file is not UTF-8 text") from None
    return parse_model_text(text, file)


def parse_model_text(text: str, file: str = "<model>") -> dict:
    """Validate the text of a model file; return the keyword arguments of ``Model``."""
    src = _Source(file, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ModelFileError(file, f"not valid TOML: {exc}", int(m.group(1)) if m else None) from None
    except RecursionError:
        raise ModelFileError(file, "TOML nested too deeply") from None

    unknown = set(doc) - _TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise src.error(f"unknown top-level key '{key}' (allowed: {', '.join(sorted(_TOP_KEYS))})", key, token=key)

    name = doc.get("name")
    if not isinstance(name, str) or not _MODEL_NAME_RE.match(name):
        raise src.error("'name' must be a lower-case identifier (letters, digits, _)", "name", token=str(name)[:40])
    meta = {}
    for key in ("title", "reference", "population", "description", "time_unit", "doi"):
        value = doc.get(key, "")
        if not isinstance(value, str):
            raise src.error(f"'{key}' must be a string", key, token=key)
        meta[key] = value
    if not meta["title"] or not meta["reference"]:
        raise src.error("a model file needs a 'title' and a 'reference' (citation or rationale)", "name")
    meta["time_unit"] = meta["time_unit"] or "day"
    horizon = doc.get("horizon", 365.0)
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or not 0 < horizon < 1e6:
        raise src.error("'horizon' must be a positive number (default simulation end time)", "horizon")

    taken: set[str] = set(TIME_NAMES) | {DOSE_AMOUNT}

    def new_symbol(sym, where):
        if not isinstance(sym, str) or not _NAME_RE.match(sym):
            raise src.error(f"{where} name '{sym}' is not an identifier (letter first, then letters, digits, _; at most 32)", sym if isinstance(sym, str) else where, token=str(sym)[:40])
        if sym in taken:
            raise src.error(f"{where} name '{sym}' is used twice or is reserved", sym, token=sym)
        from ctkinetics.modeling.expressions import FUNCTIONS

        if sym in FUNCTIONS:
            raise src.error(f"{where} name '{sym}' is a function name", sym, token=sym)
        taken.add(sym)

    def expr(text_, allowed, key, where):
        line = src.key_line(key, text_ if isinstance(text_, str) else None)
        return compile_expression(text_, allowed, file=file, line=line)

    def table(key):
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise src.error(f"'{key}' must be a table", key, token=key)
        return value

    # parameters
    parameters = []
    params_doc = table("parameters")
    if not params_doc:
        raise src.error("a model needs at least one parameter", "parameters")
    for pname, spec in params_doc.items():
        new_symbol(pname, "parameter")
        if not isinstance(spec, dict):
            raise src.error(f"parameter '{pname}' must be a table with default, lower, upper, ...", pname, token=pname)
        extra = set(spec) - _PARAM_KEYS
        if extra:
            raise src.error(f"parameter '{pname}': unknown key '{sorted(extra)[0]}'", pname, token=sorted(extra)[0])
        for num in ("default", "lower", "upper"):
            v = spec.get(num)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise src.error(f"parameter '{pname}': '{num}' must be a number", pname, token=pname)
        for s in ("unit", "scale", "description", "source"):
            if s in spec and not isinstance(spec[s], str):
                raise src.error(f"parameter '{pname}': '{s}' must be a string", pname, token=pname)
        if not spec.get("source"):
            raise src.error(f"parameter '{pname}': give the 'source' (or rationale) of its default", pname, token=pname)
        omega2 = spec.get("omega2")
        if omega2 is not None and (isinstance(omega2, bool) or not isinstance(omega2, (int, float))):
            raise src.error(f"parameter '{pname}': 'omega2' must be a number", pname, token=pname)
        if not isinstance(spec.get("estimate", True), bool):
            raise src.error(f"parameter '{pname}': 'estimate' must be true or false", pname, token=pname)
        try:
            parameters.append(
                Parameter(
                    name=pname,
                    default=float(spec["default"]),
                    lower=float(spec["lower"]),
                    upper=float(spec["upper"]),
                    unit=spec.get("unit", "1"),
                    scale=spec.get("scale", "log"),
                    description=spec.get("description", ""),
                    source=spec["source"],
                    omega2=None if omega2 is None else float(omega2),
                    estimate=spec.get("estimate", True),
                )
            )
        except ValueError as exc:
            raise src.error(str(exc), pname, token=pname) from None

    # covariates
    covariates = []
    for cname, spec in table("covariates").items():
        new_symbol(cname, "covariate")
        if not isinstance(spec, dict) or isinstance(spec.get("default"), bool) or not isinstance(spec.get("default"), (int, float)):
            raise src.error(f"covariate '{cname}' needs a numeric 'default'", cname, token=cname)
        extra = set(spec) - _COVARIATE_KEYS
        if extra:
            raise src.error(f"covariate '{cname}': unknown key '{sorted(extra)[0]}' (allowed: "
                            f"{', '.join(sorted(_COVARIATE_KEYS))})", cname, token=sorted(extra)[0])
        tv = spec.get("time_varying", False)
        if not isinstance(tv, bool):
            raise src.error(f"covariate '{cname}': 'time_varying' must be true or false", cname, token=cname)
        interp = spec.get("interpolation", "step")
        if interp not in ("step", "linear"):
            raise src.error(f"covariate '{cname}': interpolation must be 'step' or 'linear'", cname, token=str(interp)[:20])
        covariates.append(Covariate(cname, float(spec["default"]), str(spec.get("unit", "1")),
                                    str(spec.get("description", "")), tv, interp))

    base = {p.name for p in parameters} | {c.name for c in covariates}

    # definitions: ordered, each may use the ones before it
    definitions = []
    for dname, text_ in table("definitions").items():
        new_symbol(dname, "definition")
        definitions.append((dname, expr(text_, base, dname, "definition")))
        base = base | {dname}

    # states
    states = []
    states_doc = table("states")
    if not states_doc:
        raise src.error("a model needs at least one state", "states")
    for sname, spec in states_doc.items():
        new_symbol(sname, "state")
        if not isinstance(spec, dict) or "initial" not in spec:
            raise src.error(f"state '{sname}' needs an 'initial' value or expression", sname, token=sname)
        states.append(
            State(sname, expr(spec["initial"], base, sname, "initial"), str(spec.get("unit", "")), str(spec.get("description", "")))
        )
    state_names = [s.name for s in states]
    dyn = base | set(state_names) | set(TIME_NAMES)
    closed = base | set(TIME_NAMES)

    # phases
    phases_doc = doc.get("phases")
    if not isinstance(phases_doc, list) or not phases_doc or not all(isinstance(p, dict) for p in phases_doc):
        raise src.error("'phases' must be a non-empty array of tables ([[phases]])", "phases", token="phases")
    phases = []
    for i, spec in enumerate(phases_doc):
        pname = spec.get("name", f"phase{i + 1}")
        last = i == len(phases_doc) - 1
        extra = set(spec) - {"name", "end", "ode", "solution"}
        if extra:
            raise src.error(f"phase '{pname}': unknown key '{sorted(extra)[0]}'", sorted(extra)[0], token=sorted(extra)[0])
        if last and "end" in spec:
            raise src.error(f"the last phase ('{pname}') is open: it has no 'end'", "end", spec.get("end"))
        if not last and "end" not in spec:
            raise src.error(f"phase '{pname}' needs an 'end' (switch time expression)", "phases", token=str(pname))
        end = None if last else expr(spec["end"], base, "end", "switch time")
        ode = _state_map(src, spec.get("ode"), state_names, f"phase '{pname}' ode", dyn, expr)
        solution = None
        if "solution" in spec:
            solution = _state_map(src, spec["solution"], state_names, f"phase '{pname}' solution", closed, expr)
        phases.append(Phase(str(pname), end, ode, solution))
    has_solution = [p.solution is not None for p in phases]
    if any(has_solution) and not all(has_solution):
        raise src.error("a closed-form 'solution' must be given for every phase or for none", "solution")

    # observables
    observables = {}
    obs_doc = table("observables")
    if not obs_doc:
        raise src.error("a model needs at least one observable", "observables")
    for kind, text_ in obs_doc.items():
        if kind not in OBSERVABLE_KINDS:
            raise src.error(f"observable kind '{kind}' unknown (allowed: {', '.join(OBSERVABLE_KINDS)})", kind, token=kind)
        observables[kind] = expr(text_, base | set(state_names) | {"t"}, kind, "observable")

    # dosing: what a dose after the first (the initial state) adds to the states
    dosing = {}
    dose_doc = table("dosing")
    for sname, text_ in dose_doc.items():
        if sname not in state_names:
            raise src.error(f"[dosing]: '{sname}' is not a state", sname, token=str(sname)[:40])
        dosing[sname] = expr(text_, base | set(state_names) | {DOSE_AMOUNT}, sname, "dosing")

    # derived
    derived = []
    for dname, spec in table("derived").items():
        if not isinstance(dname, str) or not _NAME_RE.match(dname):
            raise src.error(f"derived name '{dname}' is not an identifier", str(dname), token=str(dname)[:40])
        if isinstance(spec, str):
            spec = {"expr": spec}
        if not isinstance(spec, dict) or "expr" not in spec:
            raise src.error(f"derived '{dname}' needs 'expr'", dname, token=dname)
        derived.append(Derived(dname, expr(spec["expr"], base, dname, "derived"), str(spec.get("unit", "")), str(spec.get("description", ""))))

    solver = table("solver")
    rtol = solver.get("rtol", 1e-6)
    atol = solver.get("atol", 1e-12)
    for label, v in (("rtol", rtol), ("atol", atol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise src.error(f"solver {label} must be a number in (0, 1)", label, token=label)

    return dict(
        name=name,
        title=meta["title"],
        reference=meta["reference"],
        doi=meta["doi"],
        population=meta["population"],
        description=meta["description"],
        time_unit=meta["time_unit"],
        horizon=float(horizon),
        parameters=tuple(parameters),
        covariate_specs=tuple(covariates),
        definitions=tuple(definitions),
        states=tuple(states),
        phases=tuple(phases),
        observable_exprs=observables,
        dosing=dosing,
        derived_specs=tuple(derived),
        rtol=float(rtol),
        atol=float(atol),
        source_file=file,
    )


def _state_map(src, value, state_names, where, allowed, expr):
    if not isinstance(value, dict):
        raise src.error(f"{where} must be a table state = expression", "ode", token=where)
    missing = [s for s in state_names if s not in value]
    extra = [s for s in value if s not in state_names]
    if extra:
        raise src.error(f"{where}: '{extra[0]}' is not a state", extra[0], token=extra[0])
    if missing:
        raise src.error(f"{where}: no expression for state '{missing[0]}'", "ode", token=missing[0])
    return {s: expr(value[s], allowed, s, where) for s in state_names}
