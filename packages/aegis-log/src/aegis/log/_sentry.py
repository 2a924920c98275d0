"""Sentry (``sentry`` extra): ERROR lines become events, lower lines become breadcrumbs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

from pydantic import SecretStr

from aegis.core.context import CONTEXT_VARS
from aegis.core.errors import ConfigurationError
from aegis.core.utils.masking import DEFAULT_SENSITIVE_KEYS, PiiKind, mask_sensitive
from aegis.log._configure import attach_output
from aegis.log._pipeline import PIPELINE, LogEntry

if TYPE_CHECKING:
    from sentry_sdk._types import Event

_OUTPUT_KEY: Final = "sentry"
_TAG_FIELDS: Final = (*(name for name in CONTEXT_VARS if name != "user_id"), "trace_id", "span_id")
_NOT_EXTRA: Final = frozenset({"timestamp", "level", "logger", "event", "exception", *_TAG_FIELDS})
_SENTRY_LEVELS: Final = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "error",
    "critical": "fatal",
}


_ACCESS_LOGGER: Final = "aegis.access"


class SentryOutput:
    """Send ERROR lines to Sentry as events, and lower lines as breadcrumbs of the next event.

    ``event_level`` and ``breadcrumb_level`` set where each begins. An ``aegis.access`` line
    without an exception is a breadcrumb at any level: the 5xx it records was reported by the
    line that logged its error. Events carry the message,
    logger and level, the exception with Sentry's own stack frames, the request context as
    tags (``user_id`` as the Sentry user) and every other field as ``extra``; the fields are
    the masked ones of the line.
    """

    def __init__(self, *, event_level: int, breadcrumb_level: int) -> None:
        import sentry_sdk  # the sentry extra is optional
        from sentry_sdk.utils import event_from_exception

        self._sdk = sentry_sdk
        self._event_from_exception = event_from_exception
        self._event_level = event_level
        self._breadcrumb_level = breadcrumb_level

    def write(self, entry: LogEntry) -> None:
        """Report one line, when its level and logger call for it."""
        if entry.level < self._breadcrumb_level:
            return
        fields = entry.event
        logger = str(fields.get("logger"))
        if logger.startswith("sentry_sdk"):  # Sentry's own lines would report themselves
            return
        level = _SENTRY_LEVELS.get(str(fields.get("level")), "error")
        extra = {key: value for key, value in fields.items() if key not in _NOT_EXTRA}
        message = fields.get("event")
        # An access line without an exception describes an answer whose error, if any, was
        # logged (and reported) by the code that handled it: one event per error, not two.
        access_only = logger == _ACCESS_LOGGER and entry.exc_info is None
        if entry.level < self._event_level or access_only:
            self._sdk.add_breadcrumb(
                type="log",
                category=logger,
                level=level,
                message=message if isinstance(message, str) else repr(message),
                data=extra,
                timestamp=datetime.fromtimestamp(entry.created, UTC),
            )
            return
        event: Event
        hint: dict[str, Any]
        if entry.exc_info is not None:
            client = self._sdk.get_client()
            event, hint = self._event_from_exception(
                entry.exc_info,
                client_options=client.options,
                mechanism={"type": "logging", "handled": True},
            )
        else:
            event, hint = cast("Event", {}), {}
        event["level"] = level  # type: ignore[typeddict-item]  # one of _SENTRY_LEVELS
        event["logger"] = logger
        event["logentry"] = {"message": message if isinstance(message, str) else repr(message)}
        event["tags"] = {key: str(fields[key]) for key in _TAG_FIELDS if key in fields}
        event["extra"] = extra
        if "user_id" in fields:
            event["user"] = {"id": str(fields["user_id"])}
        self._sdk.capture_event(event, hint=hint)

    def close(self) -> None:
        """Send what the Sentry client still holds (up to two seconds)."""
        client = self._sdk.get_client()
        if client.is_active():
            client.flush(timeout=2.0)


def _level_number(name: str) -> int:
    number = logging.getLevelNamesMapping().get(name.upper())
    if number is None:
        raise ConfigurationError(
            f"unknown log level {name!r} for Sentry: use DEBUG, INFO, WARNING, ERROR, CRITICAL",
            details={"field": "level"},
        )
    return number


def event_masker(
    keys: frozenset[str], mask: str, pii: Collection[PiiKind] | None
) -> Callable[[Any, Any], Any]:
    """The ``before_send``/``before_breadcrumb`` hook: a masked copy of what Sentry is given.

    It walks the whole event: message, exception values (chained causes included), stack
    frames, breadcrumbs, request data, tags, extra and contexts. ``pii=None`` masks the
    personal data the logging configuration masks at the time of sending. An event that
    cannot be masked is not sent (and the failure is reported once on stderr).
    """

    def mask_event(event: Any, _hint: Any) -> Any:
        kinds = PIPELINE.mask_fields.pii if pii is None else pii
        try:
            return mask_sensitive(event, keys=keys, mask=mask, pii=kinds)
        except Exception as exc:  # unmasked, it must not leave: drop it
            PIPELINE.report_error("masking a Sentry event failed, event dropped", exc)
            return None

    return mask_event


def configure_sentry(
    dsn: str | SecretStr,
    *,
    environment: str | None = None,
    release: str | None = None,
    sample_rate: float = 1.0,
    traces_sample_rate: float = 0.0,
    event_level: str = "ERROR",
    breadcrumb_level: str = "INFO",
    sensitive_keys: frozenset[str] = DEFAULT_SENSITIVE_KEYS,
    mask: str = "***",
    mask_pii: Collection[PiiKind] | None = None,
    **options: Any,
) -> None:
    """Start the Sentry SDK and report log lines to it; calling it again replaces both.

    Lines at ``event_level`` and above (from native and stdlib loggers alike) become Sentry
    events with the log context as tags and extra; lines from ``breadcrumb_level`` up become
    breadcrumbs. Sentry's own logging integration is turned off (these lines would otherwise
    arrive twice), local variables are not sent, and every event, transaction and breadcrumb
    is masked once more before it leaves (secrets inside exception messages, request data
    and breadcrumbs too), so what is masked in the logs stays masked in Sentry.

    Args:
        dsn: the project's DSN (``https://<key>@<host>/<project>``).
        environment: Sentry's ``environment`` (``production``).
        release: the version being run, for release tracking.
        sample_rate: share of error events sent, 0.0-1.0.
        traces_sample_rate: share of transactions traced, 0.0-1.0.
        event_level: lowest level that becomes an event.
        breadcrumb_level: lowest level that becomes a breadcrumb.
        sensitive_keys: keys masked in events (aegis.core's defaults).
        mask: what replaces a masked value.
        mask_pii: personal data masked in events' text (``"email"``, ``"phone"``, ``"rrn"``);
            ``None``: what ``LogSettings.mask_pii`` of the logging configuration masks.
        options: any other ``sentry_sdk.init`` option.

    Raises:
        ConfigurationError: the ``sentry`` extra is not installed, or a level or a kind of
            personal data is unknown.

    .. versionchanged:: 0.2
       Secrets inside text are masked (``password=...`` in an exception message);
       transactions are masked too; ``mask_pii`` was added.
    """
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError as exc:
        raise ConfigurationError(
            "configure_sentry needs sentry-sdk: pip install 'aegis-log[sentry]'"
        ) from exc
    events_from, crumbs_from = _level_number(event_level), _level_number(breadcrumb_level)
    pii = None if mask_pii is None else frozenset(mask_pii)
    try:  # an unknown PII kind fails here, not on the first event
        mask_sensitive("", pii=pii or ())
    except ValueError as exc:
        raise ConfigurationError(str(exc), details={"field": "mask_pii"}) from exc
    mask_event = event_masker(frozenset(sensitive_keys), mask, pii)
    sentry_sdk.init(
        dsn=dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn,
        environment=environment,
        release=release,
        sample_rate=sample_rate,
        traces_sample_rate=traces_sample_rate,
        include_local_variables=False,
        integrations=[LoggingIntegration(level=None, event_level=None)],
        before_send=mask_event,
        before_send_transaction=mask_event,
        before_breadcrumb=mask_event,
        **options,
    )
    attach_output(_OUTPUT_KEY, SentryOutput(event_level=events_from, breadcrumb_level=crumbs_from))
