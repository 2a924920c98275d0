"""Version of the aegis-msg distribution."""

__version__ = "0.1.0"
