"""Key generation: stable across processes, independent of how arguments are passed."""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import itertools
import subprocess
import sys
from datetime import UTC, date, datetime
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


class OtherFilters(BaseModel):
    """Filters' twin: same fields, another type."""

    name: str
    limit: int = 10


@dataclasses.dataclass
class OtherSpan:
    start: int
    end: int


class Shade(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    ONE = 1


class Word(enum.StrEnum):
    A = "a"


class Keyed:
    def __init__(self, key: object) -> None:
        self.key = key

    def __cache_key__(self) -> object:
        return self.key


class OtherKeyed(Keyed):
    pass


def one(value: object) -> None:
    """A function of one argument of any kind."""


def test_values_of_different_kinds_never_share_a_key() -> None:
    """A list shaped like another kind's canonical form must not take that kind's key."""
    values: list[object] = [
        b"\x00",
        ["bytes", "00"],
        {"bytes": "00"},
        Color.RED,
        Shade.RED,
        "red",
        [f"{__name__}.Color", "red"],
        {1, 2},
        ["set", [1, 2]],
        [1, 2],
        {"a": 1},
        [["a", 1]],
        ["map", [["a", 1]]],
        UUID(int=5),
        str(UUID(int=5)),
        Decimal("1.1"),
        "1.1",
        1.1,
        date(2026, 1, 2),
        datetime(2026, 1, 2, tzinfo=UTC),
        "2026-01-02",
        Filters(name="a"),
        OtherFilters(name="a"),
        {"name": "a", "limit": 10},
        Span(1, 2),
        OtherSpan(1, 2),
        {"start": 1, "end": 2},
        Keyed("k"),
        OtherKeyed("k"),
        "k",
        Level.ONE,
        1,
        True,
        1.0,
        Word.A,
        "a",
        None,
        [],
        (),
        frozenset(),
        {},
        b"",
        "",
    ]
    builder = KeyBuilder(one)
    keys = [builder((value,), {}) for value in values]

    # A tuple is keyed as the list it equals; an IntEnum or StrEnum member as its value, which
    # it equals (a plain Enum member equals nothing but itself).
    def shares(a: object, b: object) -> bool:
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return list(a) == list(b)
        return {type(a), type(b)} in ({Level, int}, {Word, str}) and a == b

    for i, j in itertools.combinations(range(len(values)), 2):
        assert (keys[i] == keys[j]) == shares(values[i], values[j]), (values[i], values[j])


def test_lists_are_keyed_by_their_items_in_order() -> None:
    builder = KeyBuilder(one)
    lists: list[object] = [[1, 2], [2, 1], [1], [], [[1, 2]], [1, [2]], [1, 2, 2], ["1", "2"]]
    assert len({builder((value,), {}) for value in lists}) == len(lists)
    assert builder(([1, 2],), {}) == builder(((1, 2),), {})
    assert builder(({2, 1},), {}) == builder((frozenset({1, 2}),), {})


def test_a_star_args_function_keys_its_tuple_of_arguments() -> None:
    def load(*ids: object) -> None: ...

    builder = KeyBuilder(load)
    assert builder(([1, 2],), {}) != builder((1, 2), {})
    assert builder((1,), {}) != builder(([1],), {})
    assert builder((1,), {}) != builder((), {})
    assert builder((1, 2), {}) == builder((1, 2), {})

    def page(first: int, *rest: object) -> None: ...

    builder = KeyBuilder(page)
    assert builder((1, [2]), {}) != builder((1, 2), {})
    assert builder((1,), {}) != builder((1, None), {})

    def pair_of(first: int, rest: list[object]) -> None: ...

    def digest(key: str) -> str:
        return key.rpartition(":")[2]

    # *rest is keyed as the list of the extra arguments, as a parameter holding that list is
    assert digest(builder((1, 2), {})) == digest(KeyBuilder(pair_of)((1, [2]), {}))
    assert digest(builder((1, 2, "x"), {})) == digest(KeyBuilder(pair_of)((1, [2, "x"]), {}))

    def options(**flags: object) -> None: ...

    assert KeyBuilder(options)((), {"a": 1}) != KeyBuilder(options)((), {"a": [1]})


def test_simple_calls_take_the_fast_path_and_get_the_general_paths_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """load(42) skips Signature.bind and json.dumps (the README's promise), same key."""
    builder = KeyBuilder(pair)
    calls: list[tuple[object, ...]] = [(1, "x"), (1, None, True), (-7, 'é"\\'), (0, "")]
    general = [
        builder((), dict(zip(["user_id", "name", "flag"], args, strict=False))) for args in calls
    ]

    def slow(*_: object, **__: object) -> object:
        raise AssertionError("the general path ran")

    def ping() -> None: ...

    no_arguments = KeyBuilder(ping)
    general.append(no_arguments((), {}))
    monkeypatch.setattr("aegis.cache._keys._dumps", slow)
    monkeypatch.setattr(KeyBuilder, "bind", slow)
    assert [builder(args, {}) for args in calls] + [no_arguments((), {})] == general
    method = KeyBuilder(Repo.load)
    assert method((Repo(), 7), {}) == method((Repo(), 7), {})


@pytest.mark.parametrize(
    ("fast", "general"),
    [
        ((True,), (1,)),
        ((1,), (1.0,)),
        ((None,), ("null",)),
        (("1",), (1,)),
        ((False,), (0,)),
    ],
)
def test_the_fast_path_tells_simple_values_from_their_lookalikes(
    fast: tuple[object, ...], general: tuple[object, ...]
) -> None:
    builder = KeyBuilder(one)
    assert builder(fast, {}) != builder(general, {})
    assert builder(fast, {}) == builder((), {"value": fast[0]})
    assert builder(general, {}) == builder((), {"value": general[0]})


def test_a_call_the_function_would_refuse_is_the_same_type_error() -> None:
    with pytest.raises(TypeError, match="user_id"):
        KeyBuilder(lookup)((), {})
    with pytest.raises(TypeError):
        KeyBuilder(pair)((1,), {})
    with pytest.raises(TypeError, match="too many positional arguments"):
        KeyBuilder(pair)((1, "x", True, 4), {})
    with pytest.raises(TypeError, match="multiple values for argument 'flag'"):
        KeyBuilder(pair)((1, "x", True), {"flag": False})


def test_functions_without_parameters_and_classmethods() -> None:
    def ping() -> None: ...

    assert KeyBuilder(ping)((), {}).startswith(f"{__name__}.")

    class Store:
        @classmethod
        def load(cls, item_id: int) -> None: ...

    builder = KeyBuilder(vars(Store)["load"].__func__)
    assert builder((Store, 1), {}) == builder((str, 1), {})  # cls is left out like self
    assert builder((Store, 1), {}) != builder((Store, 2), {})

    def first_is_not_self(thing: object, n: int) -> None: ...

    other = KeyBuilder(first_is_not_self)
    assert other(("a", 1), {}) != other(("b", 1), {})


def test_an_instance_with_a_cache_key_is_keyed_on_the_fast_path_too() -> None:
    builder = KeyBuilder(TenantRepo.load)
    assert builder((TenantRepo("a"), 1), {}) == builder((TenantRepo("a"),), {"item_id": 1})
    assert builder((TenantRepo("a"), 1), {}) != builder((TenantRepo("b"), 1), {})


def test_a_cache_key_attribute_that_is_not_callable_is_no_cache_key() -> None:
    class Odd:
        __cache_key__ = "fixed"

    with pytest.raises(CacheKeyError, match=r"Odd cannot be part of a cache key"):
        KeyBuilder(one)((Odd(),), {})


def test_a_dataclass_type_is_not_a_dataclass_value() -> None:
    with pytest.raises(CacheKeyError, match="of type type"):
        KeyBuilder(one)((Span,), {})


def test_templates_may_name_attributes_and_items_of_parameters() -> None:
    def search(filters: Filters, ids: list[int]) -> None: ...

    builder = KeyBuilder(search, "s:{filters.name}:{ids[0]}")
    assert builder((Filters(name="x"), [5]), {}) == "s:x:5"
    with pytest.raises(CacheKeyError, match="names a, b, which are not parameters"):
        KeyBuilder(search, "{b}:{a}:{ids}")
    assert not KeyBuilder(search).templated
    assert builder.templated


def test_keys_of_other_arguments_do_not_change_between_releases() -> None:
    def search(filters: Filters, ids: set[int], raw: bytes, when: date) -> None: ...

    search.__module__, search.__qualname__ = "app.users", "search"
    Filters.__module__ = "app.users"  # the key names the type, wherever the test module runs
    try:
        key = KeyBuilder(search)((Filters(name="x"), {2, 1}, b"\x01", date(2026, 1, 2)), {})
    finally:
        Filters.__module__ = __name__
    assert (
        key
        == "app.users.search:"
        + hashlib.blake2b(
            b'{"filters":{"t":"app.users.Filters","v":{"limit":10,"name":"x"}},'
            b'"ids":{"set":[1,2]},"raw":{"bytes":"01"},'
            b'"when":{"t":"datetime.date","v":"2026-01-02"}}',
            digest_size=16,
        ).hexdigest()
    )


json_values = st.recursive(
    st.integers() | st.text(max_size=5) | st.binary(max_size=3) | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=8,
)


@given(a=json_values, b=json_values)
def test_two_values_share_a_key_exactly_when_they_are_equal(a: object, b: object) -> None:
    builder = KeyBuilder(one)
    assert (builder((a,), {}) == builder((b,), {})) == (a == b)
    assert builder((a,), {}) == builder((copy.deepcopy(a),), {})
