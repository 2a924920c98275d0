"""The version of aegis-obs."""

__version__ = "0.1.0"
