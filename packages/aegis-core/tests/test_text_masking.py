"""Secrets and personal data inside free text: what mask_sensitive finds, and what it leaves."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aegis.core.utils._text_masking import MAX_SCANNED_CHARS
from aegis.core.utils.masking import PiiKind, mask_sensitive

ALL_PII: frozenset[PiiKind] = frozenset({"email", "phone", "rrn"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login failed: password=hunter2 user=kim", "login failed: password=*** user=kim"),
        ("retry with token=abc123&page=2", "retry with token=***&page=2"),
        ("token = abc123", "token = ***"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer ***"),
        ("authorization: Basic a2ltOnB3", "authorization: Basic ***"),
        ("header Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig sent", "header Bearer *** sent"),
        ("postgresql://app:s3cret@db:5432/main", "postgresql://app:***@db:5432/main"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://app:p@ss:w0rd@mq/vhost", "amqp://app:***@mq/vhost"),
        ('payload {"password": "hunter 2", "n": 1}', 'payload {"password": "***", "n": 1}'),
        ("kwargs {'client_secret': 'x y'}", "kwargs {'client_secret': '***'}"),
        (
            "[(b'authorization', b'Bearer abc'), (b'host', b'api')]",
            "[(b'authorization', b'Bearer ***'), (b'host', b'api')]",
        ),
        ('body="{\\"api_key\\": \\"k-1 2\\"}"', 'body="{\\"api_key\\": \\"***\\"}"'),
        ("export PGPASSWORD=s3cret", "export PGPASSWORD=***"),
        ("run --db-password=s3cret --verbose", "run --db-password=*** --verbose"),
        ("X-Api-Key: k-123", "X-Api-Key: ***"),
        ('"session_id" => "s-1"', '"session_id" => "***"'),
        ("step1password=s3cret", "step1password=***"),
        ("a.b.c.password:s3cret", "a.b.c.password:***"),
        ("pin: 1234, ok", "pin: ***, ok"),
        ("password=token=abc done", "password=*** done"),
        (
            "key -----BEGIN RSA PRIVATE KEY-----\nMIIE\nxyz\n-----END RSA PRIVATE KEY----- end",
            "key -----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY----- end",
        ),
        ("cut -----BEGIN PRIVATE KEY-----\nMIIE", "cut -----BEGIN PRIVATE KEY-----***"),
        ("card 4111 1111 1111 1111 declined", "card *** declined"),
    ],
)
def test_secrets_in_text_are_masked(text: str, expected: str) -> None:
    assert mask_sensitive(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "user kim logged in from 10.0.0.7 at 2026-01-02T03:04:05Z",
        "ordinary text, with: colons, commas and a=b",
        "GET /users/42: status=200 duration_ms=12.5 route=/users/{user_id}",
        "https://example.com/a:b@c",
        "https://api.example.com:8443/v1/users?page=2&sort=name#top",
        "http://kim@example.com/profile",
        "see https://example.com/docs, and ftp://mirror.example.org/pub",
        "This resource needs a bearer token",
        'Bearer realm="api", error="invalid_token"',
        "company: ACME, japan: tokyo, spinner=on",
        "order 20260102-0001, id 0194a1b2-3c4d, v1.2.3, 1767225600000",
        "kim@example.com called 010-1234-5678 about 900101-1234567",  # PII is opt-in
        "",
    ],
)
def test_text_without_secrets_is_left_alone(text: str) -> None:
    assert mask_sensitive(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail kim.lee+tag@mail.example.co.kr now", "mail *** now"),
        ("call 010-1234-5678 or 01012345678", "call *** or ***"),
        ("office 02-123-4567, (02) 123-4567", "office ***, ***"),
        ("intl +82 10-1234-5678 and +1 (555) 123-4567", "intl *** and ***"),
        ("us (555) 123-4567 or 555-123-4567.", "us *** or ***."),
        ("주민등록번호 900101-1234567 확인", "주민등록번호 *** 확인"),
        ("rrn 0412314123456 given", "rrn *** given"),
    ],
)
def test_personal_data_is_masked_when_asked_for(text: str, expected: str) -> None:
    assert mask_sensitive(text, pii=ALL_PII) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02 03:04:05.123 on 10.0.0.1:8080 and 192.168.100.200",
        "version 1.2.3-rc.4, build 20260102, ids 123456 and 0194a1b2",
        "order 991332-1234567 (month 13 is no month), epoch 1767225600000",
        "no address: kim@localhost, user@ and @handle",
    ],
)
def test_personal_data_patterns_leave_other_numbers_alone(text: str) -> None:
    assert mask_sensitive(text, pii=ALL_PII) == text


def test_each_personal_data_kind_is_chosen_on_its_own() -> None:
    text = "kim@example.com 010-1234-5678 900101-1234567"
    assert mask_sensitive(text, pii={"email"}) == "*** 010-1234-5678 900101-1234567"
    assert mask_sensitive(text, pii={"phone"}) == "kim@example.com *** 900101-1234567"
    assert mask_sensitive(text, pii={"rrn"}) == "kim@example.com 010-1234-5678 ***"


def test_unknown_personal_data_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="ssn"):
        mask_sensitive("x", pii={"ssn"})  # type: ignore[arg-type]


def test_custom_keys_and_mask_apply_inside_text() -> None:
    keys = frozenset({"internal_ref"})
    masked = mask_sensitive("internal_ref=42 password=x", keys=keys, mask="[hidden]")
    assert masked == "internal_ref=[hidden] password=x"


def test_bytes_keys_and_objects_are_masked_by_what_they_show() -> None:
    error = ValueError("connect failed: password=hunter2")
    data: dict[Any, Any] = {
        b"authorization": b"Bearer abc",
        "body": b"token=abc&x=1",
        "raw": b"\xff\xfe password=s3cret",
        "error": error,
        "password=s3cret": 1,
        ("dsn", "postgresql://u:s3cret@db/x"): 2,
        7: "pin: 1234",
    }
    masked = mask_sensitive(data)
    assert masked == {
        b"authorization": "***",
        "body": b"token=***&x=1",
        "raw": b"\xff\xfe password=***",
        "error": "ValueError('connect failed: password=***')",
        "password=***": "***",  # a sensitive key, holding a secret itself
        ("dsn", "postgresql://u:***@db/x"): 2,
        7: "pin: ***",
    }
    assert mask_sensitive({"error": ValueError("no secret")})["error"].args == ("no secret",)


def test_an_object_whose_repr_fails_is_left_to_the_renderer() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    broken = Broken()
    assert mask_sensitive([broken])[0] is broken


def test_objects_that_fail_when_inspected_do_not_break_masking() -> None:
    class Touchy:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(name)

        def __repr__(self) -> str:
            return "Touchy(token=abc)"

    class Unwalkable(Mapping[str, str]):
        def __getitem__(self, key: str) -> str:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("cannot iterate")

        def __len__(self) -> int:
            return 1

    assert mask_sensitive([Touchy(), Unwalkable()]) == ["Touchy(token=***", "***"]


def test_huge_text_is_scanned_up_to_the_bound_and_says_it_was_cut() -> None:
    secret_beyond = "password=s3cret " * 10
    text = "a" * (MAX_SCANNED_CHARS + 10) + secret_beyond
    masked = mask_sensitive(text)
    assert len(masked) <= MAX_SCANNED_CHARS
    assert masked.endswith(f"[not shown: text longer than {MAX_SCANNED_CHARS} characters]")
    assert "s3cret" not in masked
    assert mask_sensitive(masked) == masked
    near_the_end = "x" * (MAX_SCANNED_CHARS - 100) + " token=s3cret " + "y" * 200
    assert "s3cret" not in mask_sensitive(near_the_end)


@pytest.mark.parametrize(
    "hostile",
    [
        "a-" * (MAX_SCANNED_CHARS // 2),
        "'x', " * (MAX_SCANNED_CHARS // 5),
        "password=" * (MAX_SCANNED_CHARS // 9),
        "://a:" * (MAX_SCANNED_CHARS // 5),
        "Bearer " * (MAX_SCANNED_CHARS // 7),
        "0" * MAX_SCANNED_CHARS,
        "a" * 100 + "@" + "b." * (MAX_SCANNED_CHARS // 2),
    ],
    ids=["dashes", "pairs", "keys", "urls", "bearers", "digits", "email"],
)
def test_hostile_text_is_masked_without_blowing_up(hostile: str) -> None:
    masked = mask_sensitive(hostile, pii=ALL_PII)
    assert mask_sensitive(masked, pii=ALL_PII) == masked


# --- properties -----------------------------------------------------------------------------------

# Text around a planted secret: no "Q", so the secret (which has one) cannot come from it.
_AROUND = st.text(
    alphabet=st.sampled_from(list("abcxyz ABCXYZ 0129 .,;:=&/-_'\"()[]{}@#\n\tÄ한")),
    max_size=30,
)
# A secret ends in a digit: a plain word after "Bearer" is taken for prose ("bearer token").
_SECRET = st.from_regex(r"Q[A-Za-z0-9]{4,14}[0-9]", fullmatch=True)
_PLANTED = [
    "password={}",
    "PASSWORD = {}",
    "token: {}",
    "access_token={}&x=1",
    "Authorization: Bearer {}",
    "authorization: Basic {}",
    " Bearer {}",
    '"api_key": "{}"',
    "{{'client_secret': '{}'}}",
    "('authorization', b'Bearer {}')",
    '\\"password\\": \\"{}\\"',
    "postgresql://app:{}@db:5432/main",
    "redis://:{}@cache",
    "--password {}".replace(" ", "="),
    "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
]


@settings(max_examples=400)
@given(_AROUND, st.sampled_from(_PLANTED), _SECRET, _AROUND)
def test_a_planted_secret_never_survives(before: str, form: str, secret: str, after: str) -> None:
    text = before + form.format(secret) + after
    masked = mask_sensitive(text)
    assert secret not in masked
    assert mask_sensitive(masked) == masked


_FRAGMENTS = st.sampled_from(
    [
        "password", "token", "Bearer", "bearer", "authorization", "pin", "=", "=>", ":", ": ",
        ",", "'", '"', "\\", "b'", "://", "@", "/", "?", "&", " ", "\n", "***", "abc", "Q1x",
        "4111 1111 1111 1111", "010-1234-5678", "+82 10", "900101-1234567", "kim@example.com",
        "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "(", ")", "-", ".", "0",
    ]
)  # fmt: skip


@settings(max_examples=500)
@example("kim@example.comkim@example.com", "REDACTED", ALL_PII)  # the mask makes an address
@example("password=abc, token: 'x y'", "<hidden value>", frozenset())  # a mask with a blank
@given(
    st.lists(_FRAGMENTS | st.text(max_size=4), max_size=25).map("".join),
    st.sampled_from(["***", "[redacted]", "<hidden value>", "REDACTED"]),
    st.sampled_from([frozenset(), ALL_PII]),
)
def test_masking_twice_changes_nothing(text: str, mask: str, pii: frozenset[PiiKind]) -> None:
    once = mask_sensitive(text, mask=mask, pii=pii)
    assert mask_sensitive(once, mask=mask, pii=pii) == once


_ODD_LEAVES = (
    st.text()
    | st.binary(max_size=40)
    | st.integers()
    | st.floats(allow_nan=True)
    | st.none()
    | st.booleans()
    | st.builds(ValueError, st.text(max_size=20))
)
_ODD_KEYS = st.text(max_size=10) | st.binary(max_size=10) | st.integers() | st.none()


@settings(max_examples=300)
@given(
    st.recursive(
        _ODD_LEAVES,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.tuples(inner, inner)
            | st.dictionaries(_ODD_KEYS, inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_odd_input_never_raises(data: Any) -> None:
    masked = mask_sensitive(data, pii=ALL_PII)
    assert mask_sensitive(masked, pii=ALL_PII) is not None or masked is None
