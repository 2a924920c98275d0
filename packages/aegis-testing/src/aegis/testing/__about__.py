"""Version of the aegis-testing distribution."""

__version__ = "0.1.0"
