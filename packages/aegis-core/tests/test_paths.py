"""PathMatcher: the one path-pattern language of public_paths, exclude_paths and skip_paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.core.errors import ConfigurationError
from aegis.core.paths import PathMatcher


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/health", True),  # exact, any method
        ("DELETE", "/health", True),
        ("GET", "/health/ready", True),  # "/health*" is a prefix
        ("GET", "/healthz", True),
        ("GET", "/metrics", True),
        ("GET", "/metrics/x", False),  # exact only
        ("POST", "/users", True),  # one method on one path
        ("post", "/users", False),  # a request's method as sent (case-sensitive)
        ("GET", "/users", False),
        ("POST", "/users/1", False),
        ("GET", "/files/a/b", True),  # one method on a prefix
        ("PUT", "/files/a", False),
        (None, "/users", False),  # a WebSocket has no method
        (None, "/health/live", True),
        ("GET", "/", False),
    ],
)
def test_each_pattern_form_matches_what_it_says(
    method: str | None, path: str, expected: bool
) -> None:
    matcher = PathMatcher(["/health*", "/metrics", "POST /users", "get /files/*"])  # any case
    assert matcher.matches(method, path) is expected
    assert matcher.matches_scope({"method": method, "path": path}) is expected


def test_an_empty_matcher_matches_nothing_and_is_false() -> None:
    matcher = PathMatcher([])
    assert not matcher
    assert not matcher.matches("GET", "/")
    assert PathMatcher(["/x"])


def test_the_patterns_are_kept_as_given() -> None:
    assert PathMatcher(("/a", "POST /b")).patterns == ("/a", "POST /b")
    assert repr(PathMatcher(["/a"])) == "PathMatcher(['/a'])"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty"),
        ("health", "must start with '/'"),
        ("GET health", "must start with '/'"),
        ("/a*/b", "only at the end"),
        ("G3T /a", "not an HTTP method"),
    ],
)
def test_a_malformed_pattern_is_refused_with_a_clear_message(pattern: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PathMatcher([pattern])


paths = st.text(alphabet="/abc*", min_size=1, max_size=8).map(lambda s: "/" + s.replace("*", ""))


@given(patterns=st.lists(paths, max_size=4), path=paths)
def test_exact_and_prefix_patterns_agree_with_the_plain_definition(
    patterns: list[str], path: str
) -> None:
    exact = PathMatcher(patterns)
    prefixes = PathMatcher([p + "*" for p in patterns])
    assert exact.matches("GET", path) == (path in patterns)
    assert prefixes.matches("GET", path) == any(path.startswith(p) for p in patterns)
