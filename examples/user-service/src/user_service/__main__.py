"""``python -m user_service`` / ``user-service``: settings, then one uvicorn server."""

import uvicorn

from user_service.app import create_app
from user_service.settings import Settings


def main() -> None:
    """Load the settings and serve until stopped; ``bootstrap()`` configures the JSON logs."""
    settings = Settings.load()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
