import pytest

from ctkinetics.trialsim import parse_spec


def fixed_spec(rates=(0.1, 0.25, 0.45), tite=True, stagger=14.0, per_month=2.0, rules=None, **design):
    """A spec with kinetics off and fixed DLT rates (the classical OC setting)."""
    d = {"dose_levels": ["a", "b", "c"][: len(rates)], "doses": [1.0, 2.0, 3.0][: len(rates)],
         "tite": tite, "stagger_days": stagger, "accrual": {"per_month": per_month}, **design}
    doc = {"design": d, "toxicity": {"link": "fixed", "rates": list(rates)}}
    if rules is not None:
        doc["rules"] = rules
    return parse_spec(doc)


@pytest.fixture
def make_fixed_spec():
    return fixed_spec
