"""``python -m policy_service`` / ``policy-service``: settings, JSON logs, one uvicorn server."""

import uvicorn

from aegis.core.models import Environment
from aegis.log import LogSettings, configure_logging
from policy_service.app import create_app
from policy_service.settings import Settings


def main() -> None:
    """Load the settings, configure JSON logging and serve until stopped."""
    settings = Settings.load()
    configure_logging(
        LogSettings(
            environment=Environment.PRODUCTION,  # JSON lines in every environment
            service_name="policy-service",
            levels={"uvicorn.access": "WARNING"},
        )
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
