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
    from pathlib import Path

    from ctkinetics.cli.commands._output import command_line
    from ctkinetics.data import write_study
    from ctkinetics.outputs import OutputFolder, check_file

    inputs = [args.study, args.study_toml]
    single = args.to == "nonmem" and Path(args.out).suffix.lower() == ".csv"
    # checked before reading: a file where a folder is expected, not writable, the input itself
    folder = None if single else OutputFolder(args.out, inputs=inputs, command=command_line(args))
    if single:
        check_file(args.out, inputs=inputs)
    ds = load_from_args(args)
    if single:
        files = _write_beside(ds, Path(args.out), inputs + list(ds.sources))
    else:
        with folder:
            written = write_study(ds, folder.start().tmp, args.to)
            files = [folder.target / Path(f).name for f in written]
            folder.commit()
    print(f"wrote {ds!r} as {args.to}:")
    for f in files:
        print(f"  {f}")
    return 0


def _write_beside(ds, target, inputs) -> list:
    """A NONMEM .csv (with study.toml and safety.csv beside it): written in a temporary folder,
    then each file moved into place atomically (none may replace an input)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from ctkinetics.data import write_study
    from ctkinetics.outputs import check_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.ctk-tmp-", dir=target.parent))
    try:
        written = [Path(f) for f in write_study(ds, tmp / target.name, "nonmem")]
        final = [target.parent / f.name for f in written]
        for f in final:
            check_file(f, inputs=inputs)
        for src, dst in zip(written, final):
            os.replace(src, dst)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
