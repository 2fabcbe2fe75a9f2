"""The study data model: one validated, immutable :class:`Dataset`, whatever the input format.

Readers: the tidy study folder, NONMEM/nlmixr2/Monolix CSV, CDISC SDTM (CSV or .xpt).
"""
from ctkinetics.data.dataset import Dataset
from ctkinetics.data.formats import format_names, load_study, write_study
from ctkinetics.data.study import Analyte, Design, Study, read_study_toml

read_dataset = load_study

__all__ = ["Dataset", "Study", "Design", "Analyte", "load_study", "read_dataset", "write_study",
           "format_names", "read_study_toml"]
