"""policy-service: insurance policies for the users of user-service, built from aegis."""

from policy_service.app import create_app
from policy_service.settings import Settings

__all__ = ["Settings", "create_app"]
