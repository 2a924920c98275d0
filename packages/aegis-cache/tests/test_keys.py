"""Key generation: stable across processes, independent of how arguments are passed."""

from __future__ import annotations

import dataclasses
import enum
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from aegis.cache import CacheKeyError
from aegis.cache._keys import KeyBuilder


def lookup(user_id: int, region: str = "eu", *, active: bool = True) -> None:
    """A function whose keys the tests build."""


class Filters(BaseModel):
    name: str
    limit: int = 10


@dataclasses.dataclass
class Span:
    start: int
    end: int


class Color(enum.Enum):
    RED = "red"


class Repo:
    def load(self, item_id: int) -> None:
        """A method: ``self`` is not part of the key."""


class TenantRepo:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def __cache_key__(self) -> str:
        return self.tenant

    def load(self, item_id: int) -> None:
        """A method whose instance says which tenant it serves."""


def keys_of(func: object, *calls: tuple[tuple[object, ...], dict[str, object]]) -> set[str]:
    builder = KeyBuilder(func)  # type: ignore[arg-type]
    return {builder(args, kwargs) for args, kwargs in calls}


def test_positional_keyword_and_default_arguments_give_the_same_key() -> None:
    assert len(keys_of(
        lookup,
        ((1,), {}),
        ((1, "eu"), {}),
        ((), {"user_id": 1}),
        ((), {"region": "eu", "user_id": 1}),
        ((1,), {"active": True}),
        ((1,), {"active": True, "region": "eu"}),
    )) == 1  # fmt: skip


def test_different_arguments_give_different_keys() -> None:
    assert len(keys_of(
        lookup, ((1,), {}), ((2,), {}), ((1, "us"), {}), ((1,), {"active": False}), (("1",), {}),
    )) == 5  # fmt: skip


def test_the_key_names_the_function_by_module_and_qualified_name() -> None:
    key = KeyBuilder(lookup)((1,), {})
    assert key.startswith(f"{__name__}.lookup:")


def test_models_and_dataclasses_are_keyed_by_value() -> None:
    def search(filters: Filters, span: Span) -> None: ...

    builder = KeyBuilder(search)
    one = builder((Filters(name="a"), Span(1, 2)), {})
    assert one == builder((Filters(name="a", limit=10), Span(1, 2)), {})
    assert one != builder((Filters(name="a", limit=11), Span(1, 2)), {})
    assert one != builder((Filters(name="a"), Span(1, 3)), {})


def test_containers_and_common_types_are_keyed_by_value() -> None:
    def complex_args(values: object) -> None: ...

    builder = KeyBuilder(complex_args)
    value = {
        "ids": {3, 1, 2},
        "when": datetime(2026, 1, 2, tzinfo=UTC),
        "id": UUID(int=5),
        "price": Decimal("1.10"),
        "color": Color.RED,
        "raw": b"\x00",
        "pair": (1, [2]),
        "frozen": frozenset({"a"}),
    }
    reordered = dict(reversed(list(value.items())))
    reordered["ids"] = {2, 3, 1}
    assert builder((value,), {}) == builder((reordered,), {})
    assert builder(({"price": Decimal("1.10")},), {}) != builder(({"price": Decimal("1.1")},), {})


def test_self_is_left_out_unless_the_instance_has_a_cache_key() -> None:
    assert KeyBuilder(Repo.load)((Repo(), 1), {}) == KeyBuilder(Repo.load)((Repo(), 1), {})
    builder = KeyBuilder(TenantRepo.load)
    assert builder((TenantRepo("a"), 1), {}) == builder((TenantRepo("a"), 1), {})
    assert builder((TenantRepo("a"), 1), {}) != builder((TenantRepo("b"), 1), {})


def test_arguments_without_a_stable_value_are_refused_with_the_parameter_name() -> None:
    def takes(thing: object) -> None: ...

    with pytest.raises(CacheKeyError, match="argument 'thing' of type object") as caught:
        KeyBuilder(takes)((object(),), {})
    assert caught.value.code == "CACHE_KEY_INVALID"


def test_key_templates_use_the_arguments_and_are_checked_when_decorating() -> None:
    assert KeyBuilder(lookup, "user:{user_id}:{region}")((7,), {}) == "user:7:eu"
    assert KeyBuilder(lookup, lambda user_id, **_: f"u{user_id}")((7,), {}) == "u7"
    with pytest.raises(CacheKeyError, match="names missing"):
        KeyBuilder(lookup, "user:{missing}")


@given(
    user_id=st.integers(),
    region=st.text(max_size=20),
    active=st.booleans(),
)
def test_keyword_order_never_changes_the_key(user_id: int, region: str, active: bool) -> None:
    builder = KeyBuilder(lookup)
    assert builder((user_id, region), {"active": active}) == builder(
        (), {"active": active, "region": region, "user_id": user_id}
    )


def pair(user_id: int, name: str | None, flag: bool = False) -> None:
    """Positional-or-keyword parameters of simple types: the common case."""


scalars = st.one_of(st.integers(), st.text(), st.booleans(), st.none(), st.floats())


@given(user_id=scalars, name=scalars, flag=scalars)
def test_simple_positional_arguments_key_like_the_same_arguments_by_keyword(
    user_id: object, name: object, flag: object
) -> None:
    builder = KeyBuilder(pair)
    by_keyword = builder((), {"user_id": user_id, "name": name, "flag": flag})
    assert builder((user_id, name, flag), {}) == by_keyword
    assert builder((user_id, name), {}) == builder((user_id, name), {"flag": False})


def test_keys_of_simple_arguments_do_not_change_between_releases() -> None:
    def search(user_id: int, name: str | None, flag: bool | None = None) -> None: ...

    search.__module__, search.__qualname__ = "app.users", "search"
    builder = KeyBuilder(search)
    assert builder((1, "x", True), {}) == "app.users.search:a246b0229859a759704319ba173a360b"
    assert builder((-5, 'é"\\\n'), {}) == "app.users.search:45198df6907ee5a42ba085182be69747"
    assert builder((0, ""), {"flag": False}) == "app.users.search:2607aac62d93f474d8025605fa00bfcc"
    # Methods: self stays out of the fast path's key exactly as out of the general one.
    method = KeyBuilder(Repo.load)
    assert method((Repo(), 7), {}) == method((Repo(),), {"item_id": 7})


def test_keys_are_the_same_in_another_process() -> None:
    def search(filters: Filters, ids: set[int]) -> None: ...

    here = KeyBuilder(search)((Filters(name="x"), {1, 2, 3}), {})
    script = (
        "import sys; from pydantic import BaseModel; from aegis.cache._keys import KeyBuilder\n"
        "class Filters(BaseModel):\n    name: str\n    limit: int = 10\n"
        f"Filters.__module__ = {__name__!r}\n"
        "def search(filters, ids): ...\n"
        f"search.__module__ = {__name__!r}\n"
        f"search.__qualname__ = {search.__qualname__!r}\n"
        "print(KeyBuilder(search)((Filters(name='x'), {3, 2, 1}), {}))\n"
    )
    env = {"PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == here
