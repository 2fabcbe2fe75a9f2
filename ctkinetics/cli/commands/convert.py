"""ctk convert IN OUT --to FORMAT: write a study in another format (formats round-trip)."""
from __future__ import annotations

from ctkinetics.cli.commands._study import add_study_argument, load_from_args

NAME = "convert"
HELP = "Convert a study between formats: tidy study folder, NONMEM CSV, CDISC SDTM (.xpt)."


def add_arguments(parser) -> None:
    add_study_argument(parser)
    parser.add_argument("out", metavar="OUT", help="output folder (or .csv file for nonmem)")
    parser.add_argument("--to", required=True, choices=["tidy", "nonmem", "sdtm"], help="output format")


def run(args) -> int:
    from ctkinetics.data import write_study

    ds = load_from_args(args)
    files = write_study(ds, args.out, args.to)
    print(f"wrote {ds!r} as {args.to}:")
    for f in files:
        print(f"  {f}")
    return 0
