"""Names a package loads on first use."""

from __future__ import annotations

import json

import pytest

from aegis.core.utils.lazy import extra_required, lazy_getattr


def test_a_lazy_name_is_imported_from_its_module_when_read() -> None:
    getattr_ = lazy_getattr("pkg", {"dumps": "json"})
    assert getattr_("dumps") is json.dumps


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    getattr_ = lazy_getattr("pkg", {"dumps": "json"})
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'loads'"):
        getattr_("loads")


def test_a_missing_optional_library_names_the_extra_to_install() -> None:
    getattr_ = lazy_getattr(
        "pkg", {"Thing": "aegis_no_such_library.thing"}, extras={"aegis_no_such_library": "pkg[x]"}
    )
    with pytest.raises(ModuleNotFoundError) as caught:
        getattr_("Thing")
    assert str(caught.value) == (
        "pkg.Thing needs aegis_no_such_library, which is not installed: pip install 'pkg[x]'"
    )
    assert caught.value.name == "aegis_no_such_library"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_a_missing_module_no_extra_provides_surfaces_unchanged() -> None:
    getattr_ = lazy_getattr("pkg", {"Thing": "aegis_no_such_module"}, extras={"other": "pkg[x]"})
    with pytest.raises(ModuleNotFoundError, match="No module named 'aegis_no_such_module'"):
        getattr_("Thing")


def test_extra_required_leaves_other_import_errors_alone() -> None:
    with pytest.raises(ImportError, match="cannot import name"):  # noqa: SIM117 - two scopes
        with extra_required("pkg.mod", {"json": "pkg[json]"}):
            from json import no_such_name  # type: ignore[attr-defined]  # noqa: F401
