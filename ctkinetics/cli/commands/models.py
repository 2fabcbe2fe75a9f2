"""``ctk models``: list the model library, show one model (parameters, units, bounds, sources)."""
from __future__ import annotations

NAME = "models"
HELP = "List the kinetic models or show one (parameters with units, bounds and sources)."


def add_arguments(parser):
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="list the built-in models")
    show = sub.add_parser("show", help="show a model: a built-in name or a path to a .toml file")
    show.add_argument("model", metavar="NAME_OR_PATH")


def run(args) -> int:
    from ctkinetics.modeling import list_models, load_model

    if args.models_command == "list":
        rows = []
        for name in list_models():
            m = load_model(name)
            kinds = ",".join(m.observables)
            form = "closed form" if m.has_closed_form else "ODE"
            rows.append((name, kinds, form, m.title))
        width = max((len(r[0]) for r in rows), default=4)
        for name, kinds, form, title in rows:
            print(f"{name:<{width}}  {kinds:<16} {form:<11}  {title}")
        return 0

    m = load_model(args.model)
    print(f"{m.name}: {m.title}")
    print(f"reference:  {m.reference}" + (f" doi:{m.doi}" if m.doi else ""))
    if m.population:
        print(f"population: {m.population}")
    print(f"time unit:  {m.time_unit}; states: {', '.join(m.state_names)}; "
          f"{'closed form and ODE' if m.has_closed_form else 'ODE'}"
          + (f"; switch times: {', '.join(m.switch_names)}" if m.switch_names else ""))
    print("observables:")
    for kind, text in m.observables.items():
        print(f"  {kind:<6} = {text}")
    if m.covariates:
        print("covariates:")
        for c in m.covariate_specs:
            print(f"  {c.name} = {c.default:g} {c.unit}  {c.description}")
    print("parameters:")
    header = f"  {'name':<14}{'default':>12}{'lower':>11}{'upper':>11}  {'unit':<22}{'scale':<7}{'omega2':>7}  source"
    print(header)
    for p in m.parameters:
        om = "" if p.omega2 is None else f"{p.omega2:g}"
        print(f"  {p.name:<14}{p.default:>12.6g}{p.lower:>11.3g}{p.upper:>11.3g}  {p.unit:<22}{p.scale:<7}{om:>7}  {p.source}")
    if m.derived_specs:
        print("derived (typical values):")
        values = m.derived()
        for d in m.derived_specs:
            print(f"  {d.name:<16}{values[d.name]:>14.6g} {d.unit:<16} = {d.expression.text}")
    return 0
