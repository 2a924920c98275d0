"""aegis.config: typed settings for aegis services, on pydantic-settings.

Subclass :class:`AegisSettings`, declare fields (the members' models such as
``DatabaseSettings`` nest as they are) and call ``Settings.load()``. Values come from
environment variables, ``.env`` and per-environment files, secret files, Vault and
``enc:v1:`` encrypted values, in one documented priority order; every problem is one
:class:`~aegis.core.errors.ConfigurationError` that names the variables to fix.
"""

from typing import TYPE_CHECKING

from aegis.config.__about__ import __version__
from aegis.core.utils.lazy import lazy_getattr

if TYPE_CHECKING:
    from aegis.config._encryption import (
        ENCRYPTED_PREFIX,
        MASTER_KEY_VARIABLE,
        decrypt_value,
        encrypt_value,
        generate_master_key,
        is_encrypted,
        master_key_ring,
    )
    from aegis.config._environment import (
        ENVIRONMENT_VARIABLES,
        detect_environment,
        is_development,
        is_production,
        is_staging,
        is_test,
        parse_environment,
    )
    from aegis.config._settings import AegisSettings
    from aegis.config._show import describe_settings
    from aegis.config._vault import VaultClient, VaultSecret, VaultSettings
    from aegis.core.models import Environment

# Every name is imported on first use (PEP 562), so that `import aegis.config` costs almost
# nothing: settings classes load pydantic-settings, environments aegis.core's models
# (benchmarks/import_time.py).
_LAZY = {
    "AegisSettings": "aegis.config._settings",
    "ENCRYPTED_PREFIX": "aegis.config._encryption",
    "ENVIRONMENT_VARIABLES": "aegis.config._environment",
    "Environment": "aegis.core.models",
    "MASTER_KEY_VARIABLE": "aegis.config._encryption",
    "VaultClient": "aegis.config._vault",
    "VaultSecret": "aegis.config._vault",
    "VaultSettings": "aegis.config._vault",
    "decrypt_value": "aegis.config._encryption",
    "describe_settings": "aegis.config._show",
    "detect_environment": "aegis.config._environment",
    "encrypt_value": "aegis.config._encryption",
    "generate_master_key": "aegis.config._encryption",
    "is_development": "aegis.config._environment",
    "is_encrypted": "aegis.config._encryption",
    "is_production": "aegis.config._environment",
    "is_staging": "aegis.config._environment",
    "is_test": "aegis.config._environment",
    "master_key_ring": "aegis.config._encryption",
    "parse_environment": "aegis.config._environment",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
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
