"""Shared CLI plumbing: the STUDY argument (folder or file, with --format) and loading it."""
from __future__ import annotations

import warnings


def add_study_argument(parser) -> None:
    parser.add_argument("study", metavar="STUDY",
                        help="study folder (study.toml, subjects.csv, observations.csv), NONMEM CSV or SDTM folder")
    parser.add_argument("--format", choices=["tidy", "nonmem", "sdtm"], default=None,
                        help="input format (detected when omitted)")
    parser.add_argument("--study-toml", default=None, metavar="FILE",
                        help="study.toml for NONMEM/SDTM input when it is not beside the data")


def load_from_args(args, collect_warnings: bool = False):
    """Load the dataset named on the command line; DataWarnings are kept on the dataset."""
    from ctkinetics.data import load_study

    opts = {}
    if getattr(args, "study_toml", None):
        opts["study_toml"] = args.study_toml
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_study(args.study, format=args.format, **opts)
