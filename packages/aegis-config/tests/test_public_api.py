"""The public names of aegis.config: an addition or removal shows up here in review."""

from __future__ import annotations

import aegis.config


def test_public_names_are_exactly_these() -> None:
    assert aegis.config.__all__ == [
        "ENCRYPTED_PREFIX",
        "ENVIRONMENT_VARIABLES",
        "MASTER_KEY_VARIABLE",
        "AegisSettings",
        "Environment",
        "VaultClient",
        "VaultSecret",
        "VaultSettings",
        "__version__",
        "decrypt_value",
        "describe_settings",
        "detect_environment",
        "encrypt_value",
        "generate_master_key",
        "is_development",
        "is_encrypted",
        "is_production",
        "is_staging",
        "is_test",
        "master_key_ring",
        "parse_environment",
    ]
    assert all(hasattr(aegis.config, name) for name in aegis.config.__all__)
    assert aegis.config.__version__ == "0.1.0"


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [
        name
        for name in aegis.config.__all__
        if callable(getattr(aegis.config, name)) and not getattr(aegis.config, name).__doc__
    ]
    assert undocumented == []
