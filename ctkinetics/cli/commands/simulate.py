"""``ctk simulate``: simulate a population (or the typical subject) from a model to CSV."""
from __future__ import annotations

from ctkinetics.cli.commands._output import add_allow_failures

NAME = "simulate"
HELP = "Simulate subjects from a kinetic model and write a tidy CSV (subject,time,observable,value)."


def add_arguments(parser):
    parser.add_argument("model", metavar="NAME_OR_PATH", help="built-in model name or .toml path")
    parser.add_argument("--n", type=int, default=1, help="number of subjects (default 1: the typical subject, no variability)")
    parser.add_argument("--days", default=None, metavar="START:END[:STEP]",
                        help="time grid in the model's time unit (default 0:horizon, daily for CAR-T models)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible populations)")
    parser.add_argument("--dose", type=float, default=None, help="value of the 'dose' covariate (e.g. 4.5e8 cells)")
    parser.add_argument("--out", required=True, metavar="FILE.csv", help="output CSV")
    parser.add_argument("--params-out", default=None, metavar="FILE.csv", help="also write each subject's parameters")
    # issue 17: re-infusions and time-varying covariates (models with [dosing] / time_varying)
    parser.add_argument("--reinfuse", action="append", default=[], metavar="DAY:CELLS",
                        help="a later infusion DAY days after the first (repeatable; needs a model with [dosing])")
    parser.add_argument("--covariate", action="append", default=[], metavar="NAME=DAY:VALUE[,DAY:VALUE...]",
                        help="a time-varying covariate's records, value from each DAY on (or linear, as the model "
                             "declares); before the first record the model's default (repeatable)")
    add_allow_failures(parser)


def parse_grid(text):
    """'0:365' -> 0, 1, ..., 365; '0:28:0.5' -> step 0.5."""
    import numpy as np

    from ctkinetics.errors import SettingsError

    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError:
        raise SettingsError(f"--days must be START:END or START:END:STEP, got {text!r}") from None
    if len(parts) not in (2, 3):
        raise SettingsError(f"--days must be START:END or START:END:STEP, got {text!r}")
    start, end = parts[0], parts[1]
    step = parts[2] if len(parts) == 3 else 1.0
    if not (0 <= start <= end) or step <= 0 or (end - start) / step > 1e6:
        raise SettingsError(f"--days needs 0 <= START <= END and a positive STEP (at most 1e6 points), got {text!r}")
    return np.arange(start, end + step / 2, step)


def run(args) -> int:
    import math

    from ctkinetics.cli.commands._output import finish
    from ctkinetics.errors import SettingsError
    from ctkinetics.modeling import load_model, simulate, simulate_population
    from ctkinetics.outputs import check_file, write_csv_file

    if args.n < 1:
        raise SettingsError("--n must be >= 1")
    if args.dose is not None and not (math.isfinite(args.dose) and args.dose > 0):
        raise SettingsError(f"--dose must be a positive finite number of cells, got {args.dose!r}")
    outputs = [args.out] + ([args.params_out] if args.params_out else [])
    if len(set(map(str, outputs))) < len(outputs):
        raise SettingsError("--out and --params-out name the same file")
    for path in outputs:
        check_file(path, inputs=[args.model])
    model = load_model(args.model)
    times = parse_grid(args.days) if args.days else None
    covariates = None
    if args.dose is not None:
        if "dose" not in model.covariates:
            raise SettingsError(f"model {model.name} has no 'dose' covariate")
        covariates = {"dose": args.dose}
    events = _events(model, args)
    if events:
        table, params = _simulate_events(model, args, times, covariates, events)
    elif args.n == 1 and args.seed is None:
        table = simulate(model, times=times, covariates=covariates)
        table.insert(0, "subject", "typical")
        params = None
    else:
        sim = simulate_population(model, args.n, times=times, seed=args.seed, covariates=covariates)
        table, params = sim.to_frame(), sim.parameters
    failures = _non_finite(table)
    write_csv_file(args.out, table, checked=True)
    if args.params_out and params is not None:
        write_csv_file(args.params_out, params, checked=True)
    print(f"wrote {len(table)} rows ({args.n} subject(s), model {model.name}) to {args.out}")
    return finish(args, failures, "simulated subject(s) with non-finite values (inf or an "
                                  f"empty cell in {args.out}: an overflow, a solver failure or "
                                  "parameters outside the model's range)")


def _events(model, args) -> dict:
    """``{"doses": rows, "courses": {name: TimeCourse}}`` from --reinfuse / --covariate
    (empty when neither is given); bad text is a SettingsError naming the option."""
    import math

    import numpy as np

    from ctkinetics.errors import SettingsError
    from ctkinetics.modeling.solution import TimeCourse

    def pair(text, option):
        day, sep, value = str(text).partition(":")
        try:
            a, b = float(day), float(value)
        except ValueError:
            a = b = math.nan
        if not sep or not (math.isfinite(a) and math.isfinite(b)):
            raise SettingsError(f"{option} expects DAY:VALUE with two numbers, got {text!r}")
        return a, b

    out = {}
    if args.reinfuse:
        rows = sorted(pair(x, "--reinfuse") for x in args.reinfuse)
        if not model.dosing:
            raise SettingsError(f"model {model.name} does not say what a later infusion does (no [dosing] table); "
                                "use a model with one, e.g. cart_bcell_sle_allo")
        if any(d <= 0 or a < 0 for d, a in rows):
            raise SettingsError("--reinfuse needs a day > 0 (after the first infusion) and cells >= 0")
        out["doses"] = np.array(rows, float)
    specs = {c.name: c for c in model.covariate_specs}
    courses = {}
    for text in args.covariate:
        name, sep, records = str(text).partition("=")
        name = name.strip()
        spec = specs.get(name)
        if not sep or spec is None or not spec.time_varying:
            known = [c for c, v in specs.items() if v.time_varying] or ["none"]
            raise SettingsError(f"--covariate {text!r}: expected NAME=DAY:VALUE,... for a time-varying covariate of "
                                f"model {model.name} ({', '.join(known)})")
        recs = sorted(pair(x, "--covariate") for x in records.split(","))
        t, v = np.array(recs, float).T
        if t[0] > 0:   # before the first record: the model's default (the data layer's rule)
            t, v = np.r_[0.0, t], np.r_[spec.default, v]
        courses[name] = TimeCourse(t, v)
    if courses:
        out["courses"] = courses
    return out


def _simulate_events(model, args, times, covariates, events):
    """Profiles (and parameters) with later doses / time courses: parameters drawn as
    ``simulate_population`` draws them, the profiles solved with the events."""
    import numpy as np
    import pandas as pd

    from ctkinetics.modeling import simulate_population
    from ctkinetics.modeling.simulation import default_times

    t = default_times(model) if times is None else times
    if args.n == 1 and args.seed is None:
        ids, params, table_p = np.array(["typical"]), None, None
        cov = dict(covariates or {})
    else:
        sim = simulate_population(model, args.n, times=[0.0], seed=args.seed, covariates=covariates)
        table_p = sim.parameters
        ids = table_p["subject"].to_numpy()
        params = {k: table_p[k].to_numpy(float) for k in model.param_names}
        cov = {c: table_p[c].to_numpy(float) for c in model.covariates if c in table_p}
    cov.update(events.get("courses", {}))
    more = {"doses": events["doses"]} if "doses" in events else {}
    pred = model.predict(params, t, cov or None, **more)
    frames = [pd.DataFrame({"subject": np.repeat(ids, t.size), "time": np.tile(t, ids.size),
                            "observable": kind, "value": np.reshape(v, (-1,))}) for kind, v in pred.items()]
    table = pd.concat(frames, ignore_index=True).sort_values(["subject", "observable", "time"], kind="stable")
    return table.reset_index(drop=True), table_p


def _non_finite(table) -> list:
    """One line per subject whose simulated values are not all finite."""
    import numpy as np

    bad = ~np.isfinite(table["value"].to_numpy(float))
    if not bad.any():
        return []
    rows = table[bad]
    out = []
    for subject, g in rows.groupby("subject", sort=False):
        out.append(f"{subject}: {len(g)} non-finite value(s) from time {g['time'].min():g}")
    return out
