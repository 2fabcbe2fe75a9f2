"""``ctk models``: list the model library, show one model (parameters, units, bounds, sources)."""
from __future__ import annotations

from ctkinetics.formatting import number

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
            print(f"  {c.name} = {number(c.default, html=False)} {c.unit}  {c.description}")
    print("parameters:")
    rows = [("name", "default", "lower", "upper", "unit", "scale", "omega2", "source")]
    rows += [(p.name, number(p.default, html=False), number(p.lower, html=False),
              number(p.upper, html=False), p.unit, p.scale,
              "" if p.omega2 is None else number(p.omega2, html=False), p.source)
             for p in m.parameters]
    _print_columns(rows, right=(1, 2, 3, 6))
    if m.derived_specs:
        print("derived (typical values):")
        values = m.derived()
        _print_columns([(d.name, number(values[d.name], html=False), d.unit,
                         f"= {d.expression.text}") for d in m.derived_specs], right=(1,))
    return 0


def _print_columns(rows, right=()):
    """Rows as columns as wide as their longest cell (two spaces apart): a long unit such as
    (copies/ug)/(cells/uL) never runs into the next column. The last column is not padded."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        print("  " + "  ".join(cells + [str(r[-1])]))
