"""user-service: accounts, sign-in and user events, built from the aegis packages."""

from user_service.app import create_app
from user_service.settings import Settings

__all__ = ["Settings", "create_app"]
