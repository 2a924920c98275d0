"""Validators for e-mail addresses, phone numbers and passwords, as functions and pydantic types.

Needs the ``validation`` extra (email-validator, phonenumbers):
``pip install aegis-core[validation]``. The functions raise
:class:`~aegis.core.errors.InvalidInputError`; the annotated types (:data:`Email`,
:data:`PhoneNumber`, :data:`StrongPassword`) turn the same checks into pydantic errors that
name the model field.

Example:
    >>> class SignUp(BaseModel):
    ...     email: Email
    ...     phone: PhoneNumber
    ...     password: StrongPassword
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import AfterValidator, SecretStr
from pydantic_core import PydanticCustomError

from aegis.core.errors import FieldError, InvalidInputError
from aegis.core.utils.lazy import extra_required

# Without the extra, say which one to install instead of a bare "No module named".
with extra_required(
    __name__, dict.fromkeys(["email_validator", "phonenumbers"], "aegis-core[validation]")
):
    import email_validator
    import phonenumbers

_T = TypeVar("_T")


def validate_email(value: str, *, check_deliverability: bool = False, field: str = "email") -> str:
    """Return the normalized form of an e-mail address, or refuse it.

    The domain is lowercased and internationalized domains are kept in Unicode
    (``User@Bücher.example`` -> ``User@bücher.example``); the local part keeps its case, as
    RFC 5321 lets the receiving server decide. Store and compare this normalized form.

    Args:
        value: the address as typed.
        check_deliverability: also ask DNS whether the domain accepts mail (network I/O).
        field: the field name the error reports.

    Raises:
        InvalidInputError: rule ``email``; the message says what is wrong.
    """
    try:
        result = email_validator.validate_email(value, check_deliverability=check_deliverability)
    except email_validator.EmailNotValidError as exc:
        raise InvalidInputError(
            f"{field} is not a valid e-mail address: {exc}", field=field, rule="email"
        ) from exc
    return result.normalized


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
        "the country code is missing or unknown; start the number with + and the country code"
    ),
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it does not look like a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "it is too short",
    phonenumbers.NumberParseException.TOO_LONG: "it is too long",
}


def normalize_phone(value: str, *, region: str | None = None, field: str = "phone") -> str:
    """Return a phone number in E.164 form (``+442079460018``), or refuse it.

    Args:
        value: the number as typed, with or without spaces and punctuation.
        region: ISO 3166 country (``"GB"``) for numbers typed without ``+country code``;
            without it, the number must start with ``+``.
        field: the field name the error reports.

    Raises:
        InvalidInputError: rule ``phone_format`` (cannot be read as a phone number) or
            ``phone_invalid`` (readable, but no such number exists in that country's plan).
    """
    try:
        number = phonenumbers.parse(value, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        reason = _PARSE_ERRORS.get(exc.error_type, "it cannot be read as a phone number")
        raise InvalidInputError(
            f"{field} is not a phone number: {reason}", field=field, rule="phone_format"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInputError(
            f"{field} is not a valid phone number for its country",
            field=field,
            rule="phone_invalid",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Base words of the most common leaked passwords. A length rule plus "add a capital and a digit"
# makes people type "Password1234": the check strips digits and symbols from both ends first.
_COMMON_WORDS = frozenset(
    {
        *("password", "passw0rd", "qwerty", "qwertz", "azerty", "qwertyuiop", "asdfgh"),
        *("asdfghjkl", "zxcvbn", "zxcvbnm", "qazwsx", "letmein", "welcome", "admin"),
        *("administrator", "root", "iloveyou", "monkey", "dragon", "master", "sunshine"),
        *("princess", "football", "baseball", "superman", "batman", "trustno", "login"),
        *("abc", "abcd", "abcdef", "abcdefgh", "secret", "changeme", "default", "hello"),
        *("shadow", "starwars", "whatever", "freedom", "access", "summer", "winter"),
        *("spring", "autumn"),
    }
)
_MIN_DISTINCT = 5
_MIN_FORBIDDEN_LENGTH = 3  # shorter personal details ("Al") would forbid too much


@dataclass(frozen=True, kw_only=True)
class PasswordPolicy:
    """The rules a password must meet; each field names the rule it switches or sets.

    The defaults follow common practice; NIST SP 800-63B favours length and blocklists over
    character classes, which ``require_*=False`` with a larger ``min_length`` gives. Length is
    counted in characters (code points); letter classes are Unicode-aware.

    Attributes:
        min_length: rule ``min_length``.
        max_length: rule ``max_length``; bounds the work of hashing hostile input.
        require_lowercase: rule ``lowercase``.
        require_uppercase: rule ``uppercase``.
        require_digit: rule ``digit``.
        require_symbol: rule ``symbol`` (a character that is not a letter, digit or space).
        forbid_common: rule ``common``: a common password with digits or symbols around it
            (``Password1234!``), or fewer than 5 distinct characters.
        forbidden: rule ``forbidden``: text the password must not contain, ignoring case, such
            as the user name or e-mail address (entries under 3 characters are ignored).

    Example:
        >>> PasswordPolicy(min_length=16, require_symbol=True, forbidden=["alice"])
    """

    min_length: int = 12
    max_length: int = 128
    require_lowercase: bool = True
    require_uppercase: bool = True
    require_digit: bool = True
    require_symbol: bool = False
    forbid_common: bool = True
    forbidden: Collection[str] = ()


DEFAULT_PASSWORD_POLICY = PasswordPolicy()
"""The policy :func:`check_password_strength` and ``StrongPassword`` use unless given another."""


def check_password_strength(
    password: str, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY
) -> list[str]:
    """Return the rules of ``policy`` that ``password`` breaks (an empty list when it passes).

    Example:
        >>> check_password_strength("Password1234")
        ['common']
    """
    return [rule for rule, _ in _password_failures(password, policy)]


def require_strong_password(
    password: str, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY, *, field: str = "password"
) -> str:
    """Return ``password`` if it meets ``policy``, else refuse it naming every broken rule.

    ``field`` names the field in the error. The password never appears in the error.

    Raises:
        InvalidInputError: one :class:`~aegis.core.errors.FieldError` per broken rule, each
            with the rule as its ``type``.
    """
    failures = _password_failures(password, policy)
    if failures:
        raise InvalidInputError(
            f"{field} is too weak: " + "; ".join(message for _, message in failures),
            errors=[FieldError(field, message, rule) for rule, message in failures],
        )
    return password


def _password_failures(password: str, rules: PasswordPolicy) -> list[tuple[str, str]]:
    folded = password.casefold()
    checks = [
        (
            "min_length",
            len(password) < rules.min_length,
            f"use at least {rules.min_length} characters",
        ),
        (
            "max_length",
            len(password) > rules.max_length,
            f"use at most {rules.max_length} characters",
        ),
        (
            "lowercase",
            rules.require_lowercase and not any(c.islower() for c in password),
            "add a lowercase letter",
        ),
        (
            "uppercase",
            rules.require_uppercase and not any(c.isupper() for c in password),
            "add an uppercase letter",
        ),
        (
            "digit",
            rules.require_digit and not any(c.isdigit() for c in password),
            "add a digit",
        ),
        (
            "symbol",
            rules.require_symbol and all(c.isalnum() or c.isspace() for c in password),
            "add a symbol such as ! or #",
        ),
        (
            "common",
            rules.forbid_common and _is_common(folded),
            "avoid common passwords and repeated characters",
        ),
        (
            "forbidden",
            any(
                len(text) >= _MIN_FORBIDDEN_LENGTH and text.casefold() in folded
                for text in rules.forbidden
            ),
            "do not include your name, e-mail address or other personal details",
        ),
    ]
    return [(rule, message) for rule, failed, message in checks if failed]


def _is_common(folded: str) -> bool:
    letters = "".join(c for c in folded if c.isalpha())
    trimmed = folded.strip("0123456789 !@#$%^&*()-_=+.,;:?/\\|~`'\"[]{}<>")
    return trimmed in _COMMON_WORDS or letters in _COMMON_WORDS or len(set(folded)) < _MIN_DISTINCT


# --- pydantic types -----------------------------------------------------------------------------


def check(func: Callable[[_T], _T]) -> AfterValidator:
    """Turn a check into pydantic metadata for ``Annotated``: the one way to compose validators.

    ``func`` receives the already-validated value and returns it (possibly normalized) or raises
    ``ValueError`` or :class:`~aegis.core.errors.InvalidInputError`. An InvalidInputError becomes
    a pydantic error whose ``type`` is the (first) rule, with every broken rule in
    ``ctx["rules"]``, so FastAPI's 422 answer names the field and the rule. Checks run in the
    order written.

    Example:
        >>> def no_spaces(value: str) -> str:
        ...     if " " in value:
        ...         raise ValueError("must not contain spaces")
        ...     return value
        >>> WorkEmail = Annotated[str, check(validate_email), check(no_spaces)]
    """

    def run(value: _T) -> _T:
        try:
            return func(value)
        except InvalidInputError as exc:
            rules = [error.type for error in exc.errors] or ["invalid"]
            message = "; ".join(error.message for error in exc.errors) or exc.message
            # The message goes in as context so braces in it are not read as placeholders.
            context = {"message": message, "rules": rules}
            raise PydanticCustomError(rules[0], "{message}", context) from exc

    return AfterValidator(run)


def _require_strong_secret(value: SecretStr) -> SecretStr:
    require_strong_password(value.get_secret_value())
    return value


Email = Annotated[str, check(validate_email)]
"""A normalized e-mail address (:func:`validate_email`, without a DNS lookup)."""

PhoneNumber = Annotated[str, check(normalize_phone)]
"""A phone number typed with ``+country code``, stored in E.164 form (:func:`normalize_phone`)."""

StrongPassword = Annotated[SecretStr, check(_require_strong_secret)]
"""A password passing the default :func:`require_strong_password` rules, kept as ``SecretStr``.

Pydantic puts the raw input into its errors; set ``hide_input_in_errors=True`` in the model's
config so a rejected password is not echoed or logged.
"""

__all__ = [
    "DEFAULT_PASSWORD_POLICY",
    "Email",
    "PasswordPolicy",
    "PhoneNumber",
    "StrongPassword",
    "check",
    "check_password_strength",
    "normalize_phone",
    "require_strong_password",
    "validate_email",
]
