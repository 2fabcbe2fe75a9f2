"""ctk convert IN OUT --to FORMAT: write a study in another format, losslessly or not at all.

The output is written into a temporary folder beside OUT (ctkinetics.outputs), read back with
the target format's own reader and compared with the input dataset (subjects and covariates,
observations, missing samples, safety, study definition). Any difference refuses the
conversion (exit 2) and nothing is written. Covariates whose names the target format reserves
or cannot hold (``dv`` in NONMEM, ``usubjid`` or names over 8 characters in SDTM) are
renamed with a warning and mapped back in study.toml; values the format cannot hold (a
subject ID over 200 bytes in .xpt) are refused before writing. OUT may not be the input or
hold it.
"""
from __future__ import annotations

from ctkinetics.cli.commands._study import add_study_argument, load_from_args

NAME = "convert"
HELP = "Convert a study between formats: tidy study folder, NONMEM CSV, CDISC SDTM (.xpt)."


def add_arguments(parser) -> None:
    add_study_argument(parser)
    parser.add_argument("out", metavar="OUT", help="output folder (or .csv file for nonmem)")
    parser.add_argument("--to", required=True, choices=["tidy", "nonmem", "sdtm"], help="output format")


def run(args) -> int:
    import sys
    from pathlib import Path

    from ctkinetics.cli.commands._output import command_line
    from ctkinetics.outputs import OutputFolder, check_file

    inputs = [args.study, args.study_toml]
    single = args.to == "nonmem" and Path(args.out).suffix.lower() == ".csv"
    # checked before reading: a file where a folder is expected, not writable, the input itself
    folder = None if single else OutputFolder(args.out, inputs=inputs, command=command_line(args))
    if single:
        check_file(args.out, inputs=inputs)
    ds = load_from_args(args)
    notes: list[str] = []
    if single:
        files = _write_beside(ds, Path(args.out), inputs + list(ds.sources), notes)
    else:
        with folder:
            written = _write_checked(ds, folder.start().tmp, args.to, notes)
            files = [folder.target / Path(f).name for f in written]
            folder.commit()
    for n in notes + _not_carried(ds):
        print(f"warning: {n}", file=sys.stderr)
    print(f"wrote {ds!r} as {args.to} (read back and compared: identical):")
    for f in files:
        print(f"  {f}")
    return 0


def _write_checked(ds, where, fmt: str, notes: list) -> list:
    """Write ``ds`` at ``where`` in ``fmt``, read it back and compare; an input error (and
    nothing kept) when the result differs from the input."""
    import warnings

    from ctkinetics.data import load_study, write_study
    from ctkinetics.errors import DataValidationError

    written = write_study(ds, where, fmt, warnings=notes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = load_study(where, format=fmt)
    except DataValidationError as exc:
        raise DataValidationError.at(
            ds.sources[0] if ds.sources else where, None, None,
            f"converting to {fmt} would change the data, so nothing was written: the converted study "
            f"does not read back ({'; '.join(p.message for p in exc.problems[:3])})") from None
    diffs = ds.differences(back, atol_time=1e-9)
    if diffs:
        raise DataValidationError.at(
            ds.sources[0] if ds.sources else where, None, None,
            f"converting to {fmt} would change the data, so nothing was written: read back, the "
            f"converted study differs from the input ({'; '.join(diffs)})")
    return written


def _not_carried(ds) -> list[str]:
    """Audit records of the input that are not samples (EVID 2 rows, MDV=1 rows without an
    analyte): they have no place in the dataset, so the output does not carry them."""
    a = ds.audit
    other = a[(a["action"] == "excluded") & ~a["reason"].astype(str).str.startswith("missing sample")]
    if other.empty:
        return []
    kinds = "; ".join(f"{n} x {r}" for r, n in other["reason"].value_counts().items())
    return [f"{len(other)} record(s) of the input that are not samples are not carried over ({kinds})"]


def _write_beside(ds, target, inputs, notes) -> list:
    """A NONMEM .csv (with study.toml and safety.csv beside it): written in a temporary folder,
    read back and compared, then each file moved into place atomically (none may replace an
    input)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from ctkinetics.outputs import check_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.ctk-tmp-", dir=target.parent))
    try:
        written = [Path(f) for f in _write_checked(ds, tmp / target.name, "nonmem", notes)]
        final = [target.parent / f.name for f in written]
        for f in final:
            check_file(f, inputs=inputs)
        for src, dst in zip(written, final):
            os.replace(src, dst)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
