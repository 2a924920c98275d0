"""Field types for client values that reach a database, a password hash or a token.

Every database aegis supports stores these, on every driver: text is valid Unicode without
NUL, integers fit a signed 64-bit column. Declaring a request field with them turns hostile
input into a 422 naming the field before any work is done, instead of a driver error later.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _refuse_unstorable(value: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" in JSON) has no UTF-8 form: sqlite3, asyncpg, psycopg and
        # argon2 all fail to encode it, each in its own way.
        raise PydanticCustomError(
            "unicode",
            "Text must be valid Unicode: lone surrogates (U+D800 to U+DFFF) are not allowed",
        ) from None
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; SQLite would store it, so refuse it everywhere.
        raise PydanticCustomError("nul", "Text must not contain the NUL character (U+0000)")
    return value


def _storable_text(value: object, handler: ValidatorFunctionWrapHandler) -> str:
    # Checked before the str validation too: its length constraints would otherwise refuse a
    # surrogate first, as "string_unicode", so one mistake would have two names.
    if isinstance(value, str):
        _refuse_unstorable(value)
    validated: str = handler(value)
    return _refuse_unstorable(validated)  # what lax mode made of bytes or a str subclass


SafeStr = Annotated[str, WrapValidator(_storable_text)]
"""Text any database, password hash or token can carry: no lone surrogate, no NUL.

Refused with the error types ``unicode`` and ``nul``; other constraints compose as usual:
``name: SafeStr = Field(min_length=1, max_length=200)``. Everything else (emoji, right-to-left
marks, combining characters) is text like any other.
"""

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer that fits a signed 64-bit column (``BIGINT``, SQLite ``INTEGER``).

Larger ones are refused like any range check (``less_than_equal`` / ``greater_than_equal``);
add tighter bounds as usual: ``version: Int64 = Field(ge=1)``.
"""
