"""parse_redis_url: each form of a Redis URL taken apart, each malformed one refused clearly."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from aegis.core import redis_urls
from aegis.core.errors import ConfigurationError
from aegis.core.redis_urls import RedisURL, parse_redis_url


def test_the_public_names_of_the_module() -> None:
    assert redis_urls.__all__ == [
        "DEFAULT_SENTINEL_SERVICE",
        "REDIS_PORT",
        "SENTINEL_PORT",
        "RedisKind",
        "RedisURL",
        "parse_redis_url",
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisURL("standalone", (("127.0.0.1", 6379),), db=0)),
        ("redis://cache", RedisURL("standalone", (("cache", 6379),))),
        ("redis://cache/", RedisURL("standalone", (("cache", 6379),))),
        ("REDISS://cache:6380/3", RedisURL("standalone", (("cache", 6380),), tls=True, db=3)),
        ("redis://[::1]:7000/1", RedisURL("standalone", (("::1", 7000),), db=1)),
        ("redis://::1", RedisURL("standalone", (("::1", 6379),))),
        (
            "redis://app:s%40cret@cache/0?health_check_interval=5#ignored",
            RedisURL(
                "standalone",
                (("cache", 6379),),
                username="app",
                password=SecretStr("s@cret"),
                db=0,
                options=(("health_check_interval", "5"),),
            ),
        ),
        (
            "unix:///run/redis.sock?db=2",
            RedisURL("standalone", (), socket_path="/run/redis.sock", options=(("db", "2"),)),
        ),
        (
            "unix://:pw@/run/my%20redis.sock",
            RedisURL("standalone", (), password=SecretStr("pw"), socket_path="/run/my redis.sock"),
        ),
        (
            "redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/0",
            RedisURL(
                "cluster",
                (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)),
                username="app",
                password=SecretStr("s@cret"),
                db=0,
            ),
        ),
        (
            "rediss+cluster://node:7000?ssl_cert_reqs=none",
            RedisURL("cluster", (("node", 7000),), tls=True, options=(("ssl_cert_reqs", "none"),)),
        ),
        (
            "redis+cluster://2001:db8::1,fe80::1",  # bare IPv6 addresses, no ports
            RedisURL("cluster", (("2001:db8::1", 6379), ("fe80::1", 6379))),
        ),
        (
            "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/primary/2",
            RedisURL(
                "sentinel",
                (("10.0.0.1", 26379), ("10.0.0.2", 26379)),
                password=SecretStr("pw"),
                db=2,
                service="primary",
            ),
        ),
        ("redis+sentinel://s1", RedisURL("sentinel", (("s1", 26379),), service="mymaster")),
        ("redis+sentinel://s1/", RedisURL("sentinel", (("s1", 26379),), service="mymaster")),
        (
            "rediss+sentinel://user:pw@s1:5000/cache/",
            RedisURL(
                "sentinel",
                (("s1", 5000),),
                tls=True,
                username="user",
                password=SecretStr("pw"),
                service="cache",
            ),
        ),
    ],
)
def test_each_form_is_taken_apart(url: str, expected: RedisURL) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("redis://h", "redis"),
        ("rediss://h", "rediss"),
        ("unix:///s.sock", "unix"),
        ("redis+cluster://h", "redis+cluster"),
        ("rediss+cluster://h", "rediss+cluster"),
        ("redis+sentinel://h", "redis+sentinel"),
        ("REDISS+Sentinel://h", "rediss+sentinel"),
    ],
)
def test_the_scheme_is_given_back_as_written_in_lower_case(url: str, scheme: str) -> None:
    assert parse_redis_url(url).scheme == scheme


@pytest.mark.parametrize(
    ("url", "node_url"),
    [
        ("redis+cluster://h1:7000,h2:7001", "redis://h1:7000"),
        ("rediss+cluster://[::1],h2/0?a=x%20y&b=", "rediss://[::1]:6379/0?a=x+y&b="),
        ("redis+cluster://app:s%40c%3Ar%2Ft@h1/0", "redis://app:s%40c%3Ar%2Ft@h1:6379/0"),
        ("redis+cluster://:pw@h1", "redis://:pw@h1:6379"),
        ("redis+cluster://app@h1", "redis://app@h1:6379"),
    ],
)
def test_node_url_is_the_first_host_alone_with_everything_else(url: str, node_url: str) -> None:
    assert parse_redis_url(url).node_url() == node_url


def test_node_url_of_a_socket_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unix:// URL has no host"):
        parse_redis_url("unix:///run/redis.sock").node_url()


def test_the_password_is_never_printed() -> None:
    parsed = parse_redis_url("redis+sentinel://app:hunter2@s1/primary")
    assert "hunter2" not in repr(parsed)
    assert "hunter2" not in str(parsed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the scheme must be one of redis://, rediss://, unix://, redis+cluster://"),
        ("localhost:6379", "not a URL without one"),
        ("redis:cache", "not a URL without one"),
        ("memcached://h", "not memcached://"),
        ("redis+replica://h", "not redis+replica://"),
        ("unix+cluster:///s.sock", "unix+cluster:// is not a Redis URL scheme"),
        ("redis+cluster://", "redis+cluster:// names no host: write redis+cluster://host:port"),
        ("redis+sentinel:///mymaster", "redis+sentinel:// names no host"),
        ("redis+cluster://app:pw@/0", "redis+cluster:// names no host"),
        ("redis://", "redis:// names no host"),
        ("redis+cluster://h1,,h3", "host 2 of 3 is empty"),
        ("redis+cluster://h1,", "host 2 of 2 is empty"),
        ("redis+cluster://h1:abc", "the port 'abc' of 'h1:abc' is not a number from 1 to 65535"),
        ("redis+cluster://h1:7000,h2:", "the port '' of 'h2:'"),
        ("redis+sentinel://s1:0", "the port '0' of 's1:0'"),
        ("redis+sentinel://s1:65536", "the port '65536' of 's1:65536'"),
        ("redis+sentinel://s1:-1", "the port '-1'"),
        ("redis+cluster://h1:\u00b2", "the port '\u00b2'"),  # a digit to str.isdigit only
        ("redis+cluster://h1:" + "9" * 5000, "is not a number from 1 to 65535"),
        ("redis+cluster://:7000", "the host (':7000') has no host name before the port"),
        ("redis+cluster://h 1:7000", "has no host name before the port"),
        ("redis+cluster://[::1", "is not [IPv6 address] or [IPv6 address]:port"),
        ("redis+cluster://[]:7000", "is not [IPv6 address] or [IPv6 address]:port"),
        ("redis+cluster://[cache]:7000", "is not [IPv6 address] or [IPv6 address]:port"),
        ("redis+cluster://[::1]7000", "is not [IPv6 address] or [IPv6 address]:port"),
        ("redis+cluster://[::1]:x", "the port 'x' of '[::1]:x'"),
        ("redis+cluster://fe80::1:zz", "write an IPv6 address with a port in brackets"),
        ("redis://h1,h2", "redis:// names one server, not 2"),
        ("rediss://h/abc", "the database 'abc' is not a number such as 0"),
        ("redis://h/1/2", "the path '/1/2' is not a database number such as /0"),
        ("redis+cluster://h/x", "the database 'x' is not a number such as 0"),
        ("redis+sentinel://s1//0", "the Sentinel service name is empty (path '//0')"),
        ("redis+sentinel://s1//", "the Sentinel service name is empty"),
        ("redis+sentinel://s1/primary/x", "the database 'x' is not a number such as 0"),
        ("redis+sentinel://s1/primary/-1", "the database '-1'"),
        ("redis+sentinel://s1/a/1/2", "the path '/a/1/2' is not /service or /service/db"),
        ("unix://", "unix:// names no socket path"),
        ("unix:///", "unix:// names no socket path"),
        ("unix://localhost/run/redis.sock", "unix:// names a socket path, not a host"),
        ("redis://:pa/ss@h/0", "'@' stands in the path: percent-encode"),
    ],
)
def test_a_malformed_url_is_refused_with_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_redis_url(url, name="CacheSettings.url")
    assert caught.value.message.startswith("CacheSettings.url: ")
    assert message in caught.value.message
    assert caught.value.details == {"setting": "CacheSettings.url"}


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://app:topsecret@h1:abc",
        "redis+sentinel://:topsecret@s1//0",
        "redis://:topsecret@h1,h2",
        "redis://:top/secret@h/0",
        "topsecret",
        "top:secret@h://",
    ],
)
def test_an_error_never_shows_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_redis_url(url)
    assert "secret" not in caught.value.message


_HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


def _written(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


@given(
    kind=st.sampled_from(["cluster", "sentinel"]),
    tls=st.booleans(),
    hosts=st.lists(st.tuples(_HOSTS, st.none() | st.integers(1, 65535)), min_size=1, max_size=4),
    username=_TEXT,
    password=_TEXT,
    db=st.none() | st.integers(0, 10**9 - 1),
    service=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True),
)
def test_any_well_formed_url_is_taken_apart_exactly(
    *,
    kind: str,
    tls: bool,
    hosts: list[tuple[str, int | None]],
    username: str,
    password: str,
    db: int | None,
    service: str,
) -> None:
    """Hosts, default ports, credentials (any characters, percent-encoded), service and db."""
    credentials = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    path = f"/{db}" if db is not None else ""
    if kind == "sentinel":
        path = f"/{service}{path}"
    scheme = f"{'rediss' if tls else 'redis'}+{kind}"
    url = f"{scheme}://{credentials}{','.join(_written(h, p) for h, p in hosts)}{path}"
    parsed = parse_redis_url(url)
    default = 26379 if kind == "sentinel" else 6379
    assert parsed.kind == kind
    assert parsed.scheme == scheme
    assert parsed.tls is tls
    assert parsed.hosts == tuple((h, default if p is None else p) for h, p in hosts)
    assert parsed.username == (username or None)
    assert parsed.password == (SecretStr(password) if password else None)
    assert parsed.db == db
    assert parsed.service == (service if kind == "sentinel" else None)
    if kind == "cluster":
        again = parse_redis_url(parsed.node_url().replace("://", "+cluster://", 1))
        assert again.hosts == parsed.hosts[:1]
        assert (again.username, again.password, again.db) == (
            parsed.username,
            parsed.password,
            db,
        )


@given(st.text(max_size=60))
def test_any_text_is_parsed_or_refused_with_a_configuration_error(text: str) -> None:
    for url in (text, f"redis+cluster://{text}", f"redis+sentinel://{text}", f"redis://{text}"):
        with contextlib.suppress(ConfigurationError):
            parse_redis_url(url)  # never an IndexError, ValueError...
