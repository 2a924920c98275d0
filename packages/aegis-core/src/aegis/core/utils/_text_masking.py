"""Secrets and personal data inside free text: every pattern, compiled once, and one masker.

:mod:`aegis.core.utils.masking` runs :class:`TextMasker` on every string it walks (log
messages, exception messages, Sentry events); no other module defines these patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Final, Literal

PiiKind = Literal["email", "phone", "rrn"]
"""Personal data masked in text only on request: e-mail addresses, phone numbers, and Korean
resident registration numbers (주민등록번호)."""

PII_KINDS: Final[frozenset[str]] = frozenset({"email", "phone", "rrn"})

MAX_SCANNED_CHARS: Final = 1 << 20
"""Text beyond this many characters is not scanned, so it is not shown either."""
_CUT: Final = f"…[not shown: text longer than {MAX_SCANNED_CHARS} characters]"

# Patterns that must not start inside a number or a word begin with the character class and
# look behind it ("[2-9](?<![0-9].)"), not the other way round: a pattern that begins with a
# class lets the regex engine skip ahead to candidates instead of trying every position.

# --- secrets, always masked ----------------------------------------------------------------------

_CARD_CANDIDATE: Final = re.compile(r"[2-9](?<![0-9].)(?:[ -]?[0-9]){12,18}(?![0-9])")
_CARD_DIGITS: Final = re.compile(r"[2-9](?<![0-9].)[0-9]{12,18}(?![0-9])")
_SHORTEST_CARD: Final = 13
_MAX_PASSES: Final = 4
# userinfo ends at the last "@" of the authority: an unencoded "@" in a password must not cut it
_URL_PASSWORD: Final = re.compile(r"(?P<head>://[^/?#\s:@]*:)(?P<password>[^/?#\s]+)@")
# Sensitive keys are found from their separator, on the reversed text: a separator is rare, a
# word start is not. Read backwards, this is: separator, up to three blanks, an optional
# closing quote (escaped: \"key\"), then the key (at most 48 characters, so the work per
# separator is bounded) that starts with a letter, where no letter comes before it (a digit
# may: "1password=").
_KEY_BEFORE_SEPARATOR: Final = re.compile(
    r"(?P<sep>[=:,])[ \t]{0,3}(?P<close>[\"']?)\\?(?P<key>[\w.-]{0,47}[^\W\d])(?![^\W\d_])"
)
_BLANKS: Final = re.compile(r"[ \t]{0,3}>?[ \t]{0,3}")  # and the ">" of "=>"
_SCHEME: Final = r"(?P<scheme>(?i:bearer|basic|digest|token|negotiate|ntlm|apikey|dpop|bot)\s+)?"
_BARE_VALUE: Final = re.compile(_SCHEME + r"(?P<secret>[^\s,;&\"']+)")
_QUOTED_VALUE: Final = {
    quote: re.compile(rf"b?{quote}{_SCHEME}(?P<secret>(?:[^{quote}\\\n]|\\.)*)") for quote in "\"'"
}
# JSON inside a JSON string: \"password\": \"value\" (the value ends at the next \")
_ESCAPED_QUOTED_VALUE: Final = re.compile(
    r"\\[\"']" + _SCHEME + r"(?P<secret>(?:[^\\\n]|\\(?![\"']))*)"
)
_BEARER: Final = re.compile(r"[bB](?<![\w-].)(?i:earer)[ \t]+(?P<credential>[\w\-.~+/=]+)")
# "bearer token", "Bearer realm=...": a word after "Bearer" is prose; a credential is not a word
_PLAIN_WORD: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")
_PRIVATE_KEY: Final = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----)(?P<body>.*?)"
    r"(?P<end>-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z)",
    re.DOTALL,
)

# --- personal data, masked when asked for ---------------------------------------------------------

_EMAIL: Final = re.compile(
    r"[\w.%+-](?<![\w.%+-].)[\w.%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}(?![\w-])"
)
# YYMMDD, then the digit for century and sex (1-8), then six digits; since 2020 the last digits
# are random, so there is no check digit to test.
_RRN: Final = re.compile(
    r"[0-9](?<![0-9].)[0-9](?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[ -]?[1-8][0-9]{6}(?![0-9])"
)
_PHONE: Final = re.compile(
    r"[+(0-9](?<![\w+].)(?<![0-9][.\-/:].)(?:"
    # international: +82 10-1234-5678, +1 (555) 123-4567
    r"(?<=\+)[1-9][0-9]{0,2}(?:[ .\-]?\([0-9]{1,4}\))?(?:[ .\-]?[0-9]){6,12}"
    # Korean: 010-1234-5678, 02-123-4567, (02) 123-4567
    r"|(?:(?<=\()0|(?<=0))[1-9][0-9]?[ .)\-]{0,2}[0-9]{3,4}[ .\-]?[0-9]{4}"
    # North American: (555) 123-4567, 555-123-4567
    r"|(?:(?<=\()[2-9][0-9]{2}\) ?|(?<=[2-9])[0-9]{2}[.\-])[0-9]{3}[.\-][0-9]{4}"
    r")(?![\w])(?![.\-][0-9])"
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2  # Luhn doubling
        total += digit
    return total % 10 == 0


class TextMasker:
    """Mask secrets (and, when asked, personal data) inside one piece of text.

    Always: Luhn-valid card numbers, URL passwords, values of sensitive keys written as
    ``key=value``, ``key: value``, ``"key": "value"`` or ``('key', 'value')`` (an auth scheme
    such as ``Bearer`` is kept), ``Bearer`` credentials, and PEM private keys. With ``pii``:
    e-mail addresses, phone numbers, Korean resident registration numbers. Masking text twice
    gives the same text as masking it once.

    Args:
        is_sensitive: whether a key name names a secret (the rules of ``mask_sensitive``).
        mask: what replaces each secret.
        pii: any of ``"email"``, ``"phone"``, ``"rrn"``.

    Raises:
        ValueError: an unknown kind in ``pii``.
    """

    __slots__ = ("_email", "_is_sensitive", "_mask", "_phone", "_rrn")

    def __init__(
        self, is_sensitive: Callable[[str], bool], mask: str, pii: Collection[str] = ()
    ) -> None:
        unknown = set(pii) - PII_KINDS
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}: use {sorted(PII_KINDS)}")
        self._is_sensitive = is_sensitive
        self._mask = mask
        self._email = "email" in pii
        self._phone = "phone" in pii
        self._rrn = "rrn" in pii

    def __call__(self, text: str) -> str:
        """Return ``text`` with what it hides masked."""
        if len(text) > MAX_SCANNED_CHARS:
            return self._bounded(text)
        masked = self._pass(text)
        # A mask can complete a pattern that did not match before ("kim@example.com" followed
        # by a masked number is only then an address): pass again until nothing changes, so
        # that masking is idempotent. Text without secrets takes one pass.
        for _ in range(_MAX_PASSES):
            if masked is text or masked == text:
                return masked
            text, masked = masked, self._pass(masked)
        return masked

    def _pass(self, text: str) -> str:
        mask = self._mask
        # Each step first looks for a cheap sign of its pattern: most text holds no secret.
        if len(text) >= _SHORTEST_CARD and _CARD_CANDIDATE.search(text) is not None:
            text = _CARD_CANDIDATE.sub(self._card, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(self._url_password, text)
        if "=" in text or ":" in text or ("," in text and ("'" in text or '"' in text)):
            text = self._key_values(text)
        if "earer" in text or "EARER" in text:
            text = _BEARER.sub(self._bearer, text)
        if "PRIVATE KEY-----" in text:
            text = _PRIVATE_KEY.sub(lambda found: f"{found['begin']}{mask}{found['end']}", text)
        if self._rrn:
            text = _RRN.sub(mask, text)
        if self._phone:
            text = _PHONE.sub(mask, text)
        if self._email and "@" in text:
            text = _EMAIL.sub(mask, text)
        return text

    def _bounded(self, text: str) -> str:
        # Text cut by an earlier pass is scanned whole, so that masking it again changes
        # nothing (unless masks made it longer than the bound: then it is cut again).
        if text.endswith(_CUT) and len(text) - len(_CUT) <= MAX_SCANNED_CHARS:
            return self(text[: -len(_CUT)]) + _CUT
        return self(text[: MAX_SCANNED_CHARS - len(_CUT)]) + _CUT

    def _card(self, found: re.Match[str]) -> str:
        candidate = found.group()
        if _luhn_valid(candidate.replace(" ", "").replace("-", "")):
            return self._mask
        # "4111111111111111 22": the spaced candidate ran on; look at the unspaced runs in it.
        return _CARD_DIGITS.sub(
            lambda run: self._mask if _luhn_valid(run.group()) else run.group(), candidate
        )

    def _url_password(self, found: re.Match[str]) -> str:
        return f"{found['head']}{self._mask}@"

    def _bearer(self, found: re.Match[str]) -> str:
        if _PLAIN_WORD.fullmatch(found["credential"].rstrip("=.")) is not None:
            return found.group()
        return found.group()[: found.start("credential") - found.start()] + self._mask

    def _key_values(self, text: str) -> str:
        length = len(text)
        spans: list[tuple[int, int]] = []
        # Right to left; a value is not read past the secret found to its right (it would
        # join it anyway), so that "password=password=..." costs linear time, not quadratic.
        limit = length
        for found in _KEY_BEFORE_SEPARATOR.finditer(text[::-1]):
            pair = found["sep"] == ","
            if pair and not found["close"]:
                continue  # "a, b" is prose; "'key', 'value'" is a pair
            if self._is_sensitive(found["key"][::-1]):
                span = self._secret_span(text, length - found.start(), limit, quoted_only=pair)
                if span is not None:
                    spans.append(span)
                    limit = min(limit, span[0])
        if not spans:
            return text
        parts: list[str] = []
        done = 0
        for start, end in sorted(spans):
            if parts and start <= done:  # joins the secret before it ("password=token=x")
                done = max(done, end)
                continue
            parts += (text[done:start], self._mask)
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def _secret_span(
        self, text: str, position: int, limit: int, *, quoted_only: bool
    ) -> tuple[int, int] | None:
        blanks = _BLANKS.match(text, position, limit)
        if blanks is not None:
            position = blanks.end()
        head = text[position : min(position + 2, limit)]
        if head in ('\\"', "\\'"):
            pattern: re.Pattern[str] | None = _ESCAPED_QUOTED_VALUE
        else:
            pattern = _QUOTED_VALUE.get(head[1:] if head[:1] == "b" else head[:1])
        if pattern is None:
            if quoted_only:
                return None
            pattern = _BARE_VALUE
        found = pattern.match(text, position, limit)
        if found is None:
            return None
        start, end = found.span("secret")
        if start == end or text.startswith(self._mask, start):
            return None
        return start, end
