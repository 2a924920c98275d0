"""The version of aegis-auth."""

__version__ = "0.1.0"
