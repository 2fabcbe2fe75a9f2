"""One common test suite over every registered NCA parameter (scikit-learn style).

Each entry of ctkinetics.nca.parameters.PARAMETERS must declare a unit, a CDISC code and
label, a definition, its dependencies and its summary, and must equal PKNCA 0.12.1 on the
reference profiles of tests/data/pknca (see lambda_z.R there: Theoph and CAR-T-like
profiles; PKNCA's own window rule, selected here with lamz_selection='pknca').
"""
import re

import numpy as np
import pytest
from nca_helpers import ours_against, pknca_reference

from ctkinetics.nca import NCAOptions, nca
from ctkinetics.nca.parameters import (DEFAULT_PROFILE_PARAMETERS, PARAMETERS, SUMMARY_KINDS,
                                       UNIT_TYPES, dependents, resolve)
from ctkinetics.nca.quality import RULES

NAMES = sorted(PARAMETERS)


@pytest.fixture(scope="module")
def against_pknca():
    return ours_against(pknca_reference(), lamz_selection="pknca")


@pytest.mark.parametrize("name", NAMES)
def test_declared_as_data(name):
    p = PARAMETERS[name]
    assert p.name == name
    assert re.fullmatch(r"[A-Z][A-Z0-9]{1,7}", p.pptestcd), "CDISC PPTESTCD: <= 8 upper-case characters"
    assert name == p.pptestcd or name.startswith(p.pptestcd + "_")
    assert 3 <= len(p.pptest) and (len(p.pptest) <= 40 or p.interval), "CDISC PPTEST <= 40 characters"
    assert len(p.definition) >= 10 and p.definition == p.definition.strip()
    assert p.unit_type in UNIT_TYPES and p.summary in SUMMARY_KINDS
    assert all(d in PARAMETERS and d != name for d in p.depends)
    assert p.pknca, "the PKNCA name of the same quantity (its reference values are tested)"


@pytest.mark.parametrize("name", NAMES)
def test_unit_follows_from_the_data_units(name):
    unit = UNIT_TYPES[PARAMETERS[name].unit_type]("copies/ug", "day", "cells")
    assert isinstance(unit, str)
    assert ("copies/ug" in unit) == (PARAMETERS[name].unit_type in (
        "conc", "auc", "conc_per_dose", "auc_per_dose", "clearance", "volume"))


@pytest.mark.parametrize("name", NAMES)
def test_reference_values_equal_pknca(name, against_pknca):
    m = against_pknca[against_pknca["parameter"] == name]
    ref, got = m["PPORRES"].to_numpy(float), m["value"].to_numpy(float)
    assert np.isfinite(ref).sum() >= 10, "enough PKNCA reference values for this parameter"
    same = (np.isnan(ref) & np.isnan(got)) | np.isclose(ref, got, rtol=1e-9, atol=1e-12)
    assert same.all(), m.loc[~same, ["subject", "start", "end", "PPORRES", "value"]]


@pytest.mark.parametrize("name", NAMES)
def test_requested_alone_it_computes_its_dependencies_itself(name):
    import pandas as pd

    obs = pd.DataFrame({"subject": "1", "time": [1.0, 4.0, 8.0, 12.0, 16.0, 20.0],
                        "value": [10.0, 1000.0, 500.0, 250.0, 125.0, 62.5]})
    p = PARAMETERS[name]
    end = 24.0 if p.interval else np.inf
    res = nca(obs, pd.DataFrame({"subject": ["1"], "dose": [1e8]}),
              intervals=[{"start": 0, "end": end, "parameters": name}])
    assert list(res.results["parameter"]) == [name]
    assert np.isfinite(res.results["value"]).all() and (res.results["exclude"] == "").all()


def test_dependency_graph_has_no_cycle_and_reaches_pknca_deps_of_half_life():
    for name in PARAMETERS:
        seen, stack = set(), list(PARAMETERS[name].depends)
        while stack:
            d = stack.pop()
            assert d != name, f"{name} depends on itself"
            if d not in seen:
                seen.add(d)
                stack.extend(PARAMETERS[d].depends)
    # PKNCA get.parameter.deps("half.life"), restricted to the parameters both packages have
    pknca_deps = {"adj.r.squared", "aucinf.obs", "aucinf.obs.dn", "aucinf.pred", "aucint.inf.obs",
                  "aucpext.obs", "aucpext.pred", "cl.obs", "clast.pred", "half.life", "lambda.z",
                  "lambda.z.n.points", "lambda.z.time.first", "lambda.z.time.last", "r.squared",
                  "span.ratio", "vz.obs"}
    by_pknca = {p.pknca: p.name for p in PARAMETERS.values()}
    assert dependents("LAMZ") == {by_pknca[n] for n in pknca_deps}


def test_defaults_and_rules_name_registered_parameters():
    assert set(DEFAULT_PROFILE_PARAMETERS) <= set(PARAMETERS)
    for rule in RULES:
        assert rule.parameter in PARAMETERS and rule.root in PARAMETERS
        assert hasattr(NCAOptions(), rule.option)
    assert resolve("aucint", "inf").name == "AUCINT_INF" and resolve("lamz", "last").name == "LAMZ"
