"""Version of the aegis-db distribution."""

__version__ = "0.1.0"
