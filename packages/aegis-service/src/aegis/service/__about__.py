"""The version of aegis-service."""

__version__ = "0.1.0"
