"""Redis URLs of every topology, parsed once: one server, a Redis Cluster, a Sentinel primary.

aegis-cache's ``CacheSettings.url`` and aegis-service's ``AuthSettings.revocation_redis_url``
take these forms:

- ``redis://[user:password@]host[:port][/db][?options]``, ``rediss://`` (TLS) and
  ``unix://[user:password@]/path/to/redis.sock[?db=N]``: one server;
- ``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]``
  (``rediss+cluster://`` with TLS): a Redis Cluster, every host a seed the client asks for the
  cluster's nodes;
- ``redis+sentinel://[user:password@]host[:port][,host[:port]...][/service[/db]]``
  (``rediss+sentinel://``): the primary the sentinels know as ``service`` (``mymaster`` unless
  the path names one).

A host without a port gets its form's default (6379; 26379 for a sentinel). An IPv6 address is
written in brackets (``[::1]:7000``), or bare when it has no port (``::1``). The user name and
password are percent-decoded. Parsing needs no Redis library: :mod:`aegis.core.redis_clients`
(the ``redis`` extra) builds redis-py's clients from a :class:`RedisURL`.

Example:
    >>> url = parse_redis_url("redis+sentinel://s1,s2:26380/cache/2")
    >>> url.kind, url.hosts, url.service, url.db
    ('sentinel', (('s1', 26379), ('s2', 26380)), 'cache', 2)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Final, Literal, TypeAlias
from urllib.parse import parse_qsl, quote, unquote, urlencode

from pydantic import SecretStr

from aegis.core.errors import ConfigurationError

RedisKind: TypeAlias = Literal["standalone", "cluster", "sentinel"]
"""What a Redis URL names: one server, a Redis Cluster or a Sentinel-managed primary."""

REDIS_PORT: Final = 6379
"""The port of a Redis server (or cluster node) whose host names none."""
SENTINEL_PORT: Final = 26379
"""The port of a sentinel whose host names none."""
DEFAULT_SENTINEL_SERVICE: Final = "mymaster"
"""The Sentinel service of a ``redis+sentinel://`` URL whose path names none."""

_KINDS: Final[dict[str, RedisKind]] = {
    "": "standalone",
    "cluster": "cluster",
    "sentinel": "sentinel",
}
_SCHEMES: Final = (
    "redis://, rediss://, unix://, redis+cluster://, rediss+cluster://, "
    "redis+sentinel://, rediss+sentinel://"
)
_SHOWN_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
_SHOWN_LENGTH: Final = 64
_MAX_PORT: Final = 65535
_MAX_DB_DIGITS: Final = 9


@dataclass(frozen=True)
class RedisURL:
    """A Redis URL taken apart: its topology, hosts, credentials, database and options.

    Made by :func:`parse_redis_url`. The password is a ``SecretStr``, so printing the object
    never shows it; :meth:`node_url` does (it is for redis-py, not for logs).
    """

    kind: RedisKind
    """``"standalone"`` (one server), ``"cluster"`` or ``"sentinel"``."""
    hosts: tuple[tuple[str, int], ...]
    """``(host, port)`` in the URL's order: the server, the cluster's seeds or the sentinels.

    Empty for a ``unix://`` URL. IPv6 addresses without their brackets.
    """
    tls: bool = False
    """The scheme is ``rediss`` (``rediss://``, ``rediss+cluster://``, ``rediss+sentinel://``)."""
    username: str | None = None
    password: SecretStr | None = None
    db: int | None = None
    """The database number the path names (``/2``); None when it names none."""
    service: str | None = None
    """The Sentinel service of the primary (``redis+sentinel://`` only)."""
    socket_path: str | None = None
    """The socket of a ``unix://`` URL."""
    options: tuple[tuple[str, str], ...] = ()
    """The query's ``(name, value)`` pairs in order, decoded (``?ssl_cert_reqs=none``)."""

    @property
    def scheme(self) -> str:
        """The scheme as the URL would be written: ``unix``, ``rediss``, ``redis+cluster``..."""
        if self.socket_path is not None:
            return "unix"
        base = "rediss" if self.tls else "redis"
        return base if self.kind == "standalone" else f"{base}+{self.kind}"

    def node_url(self) -> str:
        """A ``redis://`` (``rediss://``) URL of the first host alone, for redis-py's ``from_url``.

        It keeps the credentials, the database and the options: a cluster's client is built from
        it and learns the other nodes from the seeds. It holds the password: never log it.

        Raises:
            ConfigurationError: the URL has no host (``unix://``).
        """
        if not self.hosts:
            raise ConfigurationError(f"a {self.scheme}:// URL has no host to connect to")
        host, port = self.hosts[0]
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self.username or self.password:
            user = quote(self.username or "", safe="")
            secret = self.password.get_secret_value() if self.password else ""
            netloc = f"{user}{':' + quote(secret, safe='') if secret else ''}@{netloc}"
        path = f"/{self.db}" if self.db is not None else ""
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"{'rediss' if self.tls else 'redis'}://{netloc}{path}{query}"


def parse_redis_url(url: str, *, name: str = "Redis URL") -> RedisURL:
    """Take ``url`` apart (the forms are in the module docstring), checking every piece.

    Args:
        url: the URL, e.g. ``redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2/0``.
        name: what the URL is, for the errors (``"CacheSettings.url"``).

    Raises:
        ConfigurationError: the scheme is none of the forms'; no host (or socket path) is
            named, or one in a list is empty; a port is not a number from 1 to 65535; a
            ``redis://`` URL names several hosts; the path is not ``/db`` (``/service[/db]``
            for a sentinel); the Sentinel service name is empty; ``@`` stands in the path (a
            password with an unencoded ``/``). The message names the piece, never the password.

    Example:
        >>> url = parse_redis_url("redis+cluster://app:pw@10.0.0.1:7000,[::1]/0")
        >>> url.kind, url.hosts, url.username, url.db
        ('cluster', (('10.0.0.1', 7000), ('::1', 6379)), 'app', 0)
    """
    scheme, separator, rest = url.partition("://")
    base, _, topology = scheme.lower().partition("+")
    kind = _KINDS.get(topology)
    if not separator or kind is None or base not in ("redis", "rediss", "unix"):
        raise _error(
            name, f"the scheme must be one of {_SCHEMES}, not {_scheme(scheme, separator)}"
        )
    if base == "unix" and kind != "standalone":
        raise _error(name, f"unix:// names one server: {scheme}:// is not a Redis URL scheme")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:].partition("#")[0]
    path, _, query = tail.partition("?")
    if "@" in path:
        raise _error(
            name,
            "'@' stands in the path: percent-encode '/', '?', '#' and '@' in the user name "
            "and password",
        )
    credentials, _, host_list = netloc.rpartition("@")
    user, _, secret = credentials.partition(":")
    where = f"{scheme.lower()}://"
    parsed = RedisURL(
        kind=kind,
        hosts=(),
        tls=base == "rediss",
        username=unquote(user) or None,
        password=SecretStr(unquote(secret)) if secret else None,
        options=tuple(parse_qsl(query, keep_blank_values=True)),
    )
    segments = _segments(path)
    if base == "unix":
        if host_list:
            raise _error(name, f"{where} names a socket path, not a host: unix:///path/to.sock")
        if not segments:
            raise _error(name, f"{where} names no socket path: unix:///path/to/redis.sock")
        return replace(parsed, socket_path=unquote(path))
    hosts = _hosts(name, where, host_list, SENTINEL_PORT if kind == "sentinel" else REDIS_PORT)
    if kind == "standalone" and len(hosts) > 1:
        raise _error(
            name,
            f"{where} names one server, not {len(hosts)}: for several, write "
            "redis+cluster://h1:p1,h2:p2 or redis+sentinel://h1:p1,h2:p2/service",
        )
    if kind == "sentinel":
        if len(segments) > 2:
            raise _error(name, f"the path {_shown(path)} is not /service or /service/db")
        service = segments[0] if segments else DEFAULT_SENTINEL_SERVICE
        if not service:
            raise _error(
                name,
                f"the Sentinel service name is empty (path {_shown(path)}): write "
                f"{where}host:26379/mymaster/0",
            )
        db = _db(name, segments[1]) if len(segments) > 1 else None
        return replace(parsed, hosts=hosts, service=service, db=db)
    if len(segments) > 1:
        raise _error(name, f"the path {_shown(path)} is not a database number such as /0")
    return replace(parsed, hosts=hosts, db=_db(name, segments[0]) if segments else None)


def _segments(path: str) -> list[str]:
    """``/a/b`` as ``["a", "b"]``; ``""`` and ``"/"`` as ``[]``; a trailing ``/`` is dropped."""
    if not path:
        return []
    segments = path[1:].split("/")
    if segments[-1] == "":
        segments.pop()
    return segments


def _hosts(name: str, where: str, host_list: str, default_port: int) -> tuple[tuple[str, int], ...]:
    if not host_list:
        raise _error(name, f"{where} names no host: write {where}host:port")
    nodes = host_list.split(",")
    return tuple(
        _host(
            name, node, f"host {i} of {len(nodes)}" if len(nodes) > 1 else "the host", default_port
        )
        for i, node in enumerate(nodes, start=1)
    )


def _host(name: str, node: str, which: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare ``v6`` as ``(host, port)``."""
    if not node:
        raise _error(name, f"{which} is empty: write host:port, hosts separated by ','")
    if node.startswith("["):
        address, bracket, after = node[1:].partition("]")
        if not bracket or not _is_ipv6(address) or (after and not after.startswith(":")):
            raise _error(
                name,
                f"{which} ({_shown(node)}) is not [IPv6 address] or [IPv6 address]:port",
            )
        return address, _port(name, after[1:], node) if after else default_port
    if node.count(":") > 1:  # an IPv6 address without brackets can have no port
        if not _is_ipv6(node):
            raise _error(
                name,
                f"{which} ({_shown(node)}) is not host:port; write an IPv6 address with a "
                "port in brackets: [::1]:6379",
            )
        return node, default_port
    host, colon, port = node.partition(":")
    if not host or any(c.isspace() for c in host):
        raise _error(name, f"{which} ({_shown(node)}) has no host name before the port")
    return host, _port(name, port, node) if colon else default_port


def _port(name: str, text: str, node: str) -> int:
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= len("65535") else 0
    if not 0 < number <= _MAX_PORT:
        raise _error(
            name, f"the port {_shown(text)} of {_shown(node)} is not a number from 1 to 65535"
        )
    return number


def _db(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DB_DIGITS):
        raise _error(name, f"the database {_shown(text)} is not a number such as 0")
    return int(text)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _scheme(scheme: str, separator: str) -> str:
    """The scheme as written, for an error; nothing that could be part of a password."""
    if separator and _SHOWN_SCHEME.fullmatch(scheme):
        return f"{scheme}://"
    return "a URL without one" if not separator else "that"


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut to a readable length."""
    cut = text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + "..."
    return repr(cut)


def _error(name: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{name}: {problem}", details={"setting": name})


__all__ = [
    "DEFAULT_SENTINEL_SERVICE",
    "REDIS_PORT",
    "SENTINEL_PORT",
    "RedisKind",
    "RedisURL",
    "parse_redis_url",
]
