"""Every name the top-level package promises resolves to a callable or class of its layer."""
import importlib

import pytest

import ctkinetics


@pytest.mark.parametrize("name", sorted(ctkinetics._EXPORTS))
def test_public_name_resolves(name):
    obj = getattr(ctkinetics, name)
    assert callable(obj)
    module = importlib.import_module(ctkinetics._EXPORTS[name])
    assert getattr(module, name) is obj or name == "nca"
