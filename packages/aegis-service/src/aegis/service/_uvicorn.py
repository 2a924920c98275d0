"""uvicorn's loggers, routed through aegis-log; its access log off where aegis writes one."""

from __future__ import annotations

import logging
from typing import Final

_SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error")
_ACCESS_LOGGER: Final = "uvicorn.access"


def adopt_uvicorn_logging(*, server_loggers: bool = True) -> None:
    """Send uvicorn's own lines through aegis-log and turn its access log off.

    uvicorn configures its loggers with handlers of its own (plain text, ANSI colours) when it
    starts, which may be after ``configure_logging`` ran (``uvicorn.run(app)`` builds the app
    first): its lines would bypass the JSON pipeline. Its access line repeats the aegis
    ``aegis.access`` line with less in it (no request id, route or duration), so it is turned
    off the way ``uvicorn --no-access-log`` does it: no handler, no propagation (uvicorn then
    skips it altogether; see aegis-log's ``configure_logging``, which leaves it so).

    Args:
        server_loggers: also take the handlers off ``uvicorn`` and ``uvicorn.error`` so their
            lines reach the root logger (``False`` where the application configures logging
            itself: only the access log is turned off).
    """
    for name in _SERVER_LOGGERS if server_loggers else ():
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    access = logging.getLogger(_ACCESS_LOGGER)
    for handler in list(access.handlers):
        access.removeHandler(handler)
    access.propagate = False
