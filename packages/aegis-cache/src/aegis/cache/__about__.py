"""Version of aegis-cache."""

__version__ = "0.1.0"
