"""The version of aegis-log."""

__version__ = "0.1.0"
