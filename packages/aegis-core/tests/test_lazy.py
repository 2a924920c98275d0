"""Names a package loads on first use."""

from __future__ import annotations

import json

import pytest

from aegis.core.utils.lazy import lazy_getattr


def test_a_lazy_name_is_imported_from_its_module_when_read() -> None:
    getattr_ = lazy_getattr("pkg", {"dumps": "json"})
    assert getattr_("dumps") is json.dumps


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    getattr_ = lazy_getattr("pkg", {"dumps": "json"})
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'loads'"):
        getattr_("loads")
