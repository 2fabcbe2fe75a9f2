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


# Literal so `ctk --help` does not import numpy; a test checks them against the registries
# in ctkinetics.estimation.likelihood.
BLQ_CHOICES = ("M1", "M3", "M5", "M6", "M7")
ERROR_CHOICES = ("proportional", "additive", "combined")


def add_model_fit_arguments(parser) -> None:
    """The options every model fit shares (``ctk fit``, ``ctk popfit``): the study, the model,
    the output folder, the BLQ method, the residual error model and the analytes."""
    add_study_argument(parser)
    parser.add_argument("--model", required=True, metavar="NAME",
                        help="model name from the library (ctk models) or a .toml path")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--blq", default="M3", type=str.upper, choices=BLQ_CHOICES,
                        help="BLQ method (default M3: censored likelihood, each sample's LLOQ)")
    parser.add_argument("--error", default="proportional", choices=ERROR_CHOICES,
                        help="residual error model, one SD per analyte (default proportional)")
    parser.add_argument("--analytes", default=None, metavar="A,B",
                        help="analytes fitted jointly (default: those the model observes)")
    parser.add_argument("--estimate", default=None, metavar="A,B",
                        help="exactly the model parameters estimated; the others are held at "
                             "their --fix value or model default (default: the model file's "
                             "choice, parameters declared estimate = false are fixed)")
    parser.add_argument("--fix", action="append", default=None, metavar="NAME=VALUE",
                        help="hold a model parameter at a value (natural scale); repeatable. "
                             "ctk fit also holds a residual SD, named as in parameters.csv "
                             "(e.g. sigma_bcell=0.2)")
