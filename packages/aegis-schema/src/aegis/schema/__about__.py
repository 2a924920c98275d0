"""Version of the aegis-schema distribution."""

__version__ = "0.1.0"
