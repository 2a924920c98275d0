"""Version of the aegis-config distribution."""

__version__ = "0.1.0"
