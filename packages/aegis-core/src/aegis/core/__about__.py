"""Version of the aegis-core distribution."""

__version__ = "0.1.0"
