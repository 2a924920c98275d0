"""aegis.core.context: request-scoped values that follow tasks, not threads, unless carried."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aegis.core import context
from aegis.core.context import (
    CONTEXT_VARS,
    current_context,
    request_context,
    request_scope,
    with_current_context,
)


def test_nothing_is_set_outside_a_request() -> None:
    assert current_context() == {}
    assert all(variable.get() is None for variable in CONTEXT_VARS.values())


def test_request_context_sets_every_field_and_restores_them_after_the_block() -> None:
    with request_context(
        request_id="r-1",
        correlation_id="c-1",
        user_id="u-1",
        service_name="users",
        tenant_id="t-1",
    ):
        assert current_context() == {
            "request_id": "r-1",
            "correlation_id": "c-1",
            "user_id": "u-1",
            "service_name": "users",
            "tenant_id": "t-1",
        }
        assert context.request_id.get() == "r-1"
        assert context.tenant_id.get() == "t-1"
    assert current_context() == {}


def test_request_context_restores_the_values_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), request_context(request_id="r-1"):
        raise RuntimeError("boom")
    assert context.request_id.get() is None


def test_fields_left_as_none_keep_their_current_value() -> None:
    with request_context(request_id="r-1", service_name="users"):
        with request_context(user_id="u-1"):
            assert current_context() == {
                "request_id": "r-1",
                "user_id": "u-1",
                "service_name": "users",
            }
        assert current_context() == {"request_id": "r-1", "service_name": "users"}


def test_nested_blocks_override_and_restore_the_outer_values() -> None:
    with request_context(request_id="outer", user_id="u-1"):
        with request_context(request_id="inner"):
            assert current_context() == {"request_id": "inner", "user_id": "u-1"}
        assert current_context() == {"request_id": "outer", "user_id": "u-1"}
    assert current_context() == {}


def test_current_context_lists_fields_in_the_order_log_lines_show_them() -> None:
    with request_context(tenant_id="t", user_id="u", request_id="r"):
        assert list(current_context()) == ["request_id", "user_id", "tenant_id"]
    assert list(CONTEXT_VARS) == [
        "request_id",
        "correlation_id",
        "user_id",
        "service_name",
        "tenant_id",
    ]


def test_concurrent_tasks_each_see_only_their_own_request() -> None:
    async def serve(name: str, started: asyncio.Event, proceed: asyncio.Event) -> dict[str, str]:
        with request_context(request_id=name, user_id=f"user-{name}"):
            started.set()
            await proceed.wait()  # both tasks are now inside their blocks at the same time
            return current_context()

    async def main() -> tuple[list[dict[str, str]], dict[str, str]]:
        started = [asyncio.Event(), asyncio.Event()]
        proceed = asyncio.Event()
        with request_context(service_name="users"):
            tasks = [
                asyncio.create_task(serve(name, event, proceed))
                for name, event in zip(["a", "b"], started, strict=True)
            ]
            for event in started:
                await event.wait()
            assert context.request_id.get() is None  # the parent task is untouched
            proceed.set()
            seen = list(await asyncio.gather(*tasks))
            return seen, current_context()

    seen, parent = asyncio.run(main())
    assert seen == [
        {"request_id": "a", "user_id": "user-a", "service_name": "users"},
        {"request_id": "b", "user_id": "user-b", "service_name": "users"},
    ]
    assert parent == {"service_name": "users"}


def test_a_task_keeps_the_values_set_when_it_was_created_after_the_block_ends() -> None:
    async def read() -> str | None:
        return context.request_id.get()

    async def main() -> tuple[str | None, str | None]:
        with request_context(request_id="r-1"):
            task = asyncio.create_task(read())
        # The block has ended before the task first runs: it still sees its own copy.
        return context.request_id.get(), await task

    assert asyncio.run(main()) == (None, "r-1")


def test_with_current_context_carries_the_request_into_an_executor_thread() -> None:
    def who() -> dict[str, str]:
        return current_context()

    with request_context(request_id="r-1", user_id="u-1"), ThreadPoolExecutor(2) as executor:
        carried = executor.submit(with_current_context(who)).result()
        bare = executor.submit(who).result()
    assert carried == {"request_id": "r-1", "user_id": "u-1"}
    assert bare == {}


def test_with_current_context_captures_the_context_when_wrapping_not_when_calling() -> None:
    with request_context(request_id="r-1"):
        wrapped = with_current_context(current_context)
    with request_context(request_id="r-2"):
        assert wrapped() == {"request_id": "r-1"}
        assert context.request_id.get() == "r-2"


def test_with_current_context_runs_concurrent_calls_in_separate_copies() -> None:
    barrier = threading.Barrier(2)

    def set_and_read(value: str) -> str | None:
        with request_context(user_id=value):
            barrier.wait()  # both threads have set their value before either reads
            return context.user_id.get()

    with request_context(request_id="r-1"):
        work = with_current_context(set_and_read)
    with ThreadPoolExecutor(2) as executor:
        results = list(executor.map(work, ["a", "b"]))
    assert results == ["a", "b"]


def test_with_current_context_passes_arguments_and_keeps_the_function_name() -> None:
    def add(left: int, right: int = 0) -> int:
        return left + right

    wrapped = with_current_context(add)
    assert wrapped(1, right=2) == 3
    assert wrapped.__name__ == "add"


def test_a_bare_thread_does_not_see_the_request() -> None:
    seen: list[dict[str, str]] = []
    with request_context(request_id="r-1"):
        thread = threading.Thread(target=lambda: seen.append(current_context()))
        thread.start()
        thread.join()
    assert seen == [{}]


def test_the_public_names_of_the_context_module() -> None:
    assert context.__all__ == [
        "CONTEXT_VARS",
        "RequestFields",
        "correlation_id",
        "current_context",
        "request_context",
        "request_id",
        "request_scope",
        "scope_caller",
        "service_name",
        "tenant_id",
        "user_id",
        "with_current_context",
    ]


def test_request_scope_clears_the_fields_named_as_none_and_keeps_the_others() -> None:
    with request_context(request_id="earlier", user_id="admin-1", tenant_id="t-1"):
        with request_scope(user_id=None, tenant_id=None, correlation_id="c-2"):
            assert current_context() == {"request_id": "earlier", "correlation_id": "c-2"}
        assert current_context() == {
            "request_id": "earlier",
            "user_id": "admin-1",
            "tenant_id": "t-1",
        }


def test_request_scope_resets_with_its_tokens_whatever_the_block_set() -> None:
    def fail_deeper() -> None:
        with request_scope(user_id=None):
            context.user_id.set("deeper")
            raise RuntimeError("boom")

    def request() -> None:
        with request_scope(user_id="u-1"):
            context.user_id.set("changed-inside")
            context.tenant_id.set("set-inside-unnamed")  # not named: the block does not own it
            with pytest.raises(RuntimeError):
                fail_deeper()
            assert context.user_id.get() == "changed-inside"
        assert context.user_id.get() is None
        assert context.tenant_id.get() == "set-inside-unnamed"

    contextvars.copy_context().run(request)


def test_a_request_that_starts_in_a_stale_context_sees_only_its_own_fields() -> None:
    """A server may run a request in a copy of a context an earlier request wrote into."""
    stale = contextvars_copy_with(user_id="admin-1", tenant_id="t-1", request_id="old")

    def request() -> dict[str, str]:
        with request_scope(
            request_id="new", correlation_id="new", service_name=None, user_id=None, tenant_id=None
        ):
            return current_context()

    assert stale.run(request) == {"request_id": "new", "correlation_id": "new"}
    assert stale.run(current_context) == {
        "request_id": "old",
        "user_id": "admin-1",
        "tenant_id": "t-1",
    }


def contextvars_copy_with(**fields: str) -> contextvars.Context:
    """A copy of the current context with ``fields`` set, as a leaked request leaves one."""

    def fill() -> contextvars.Context:
        for name, value in fields.items():
            CONTEXT_VARS[name].set(value)
        return contextvars.copy_context()

    return contextvars.copy_context().run(fill)


def test_request_scope_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="user"), request_scope(user="admin-1"):  # type: ignore[call-arg]
        pass  # pragma: no cover - entering fails


class _Simple:
    """Starlette's SimpleUser shape: identity raises NotImplementedError."""

    is_authenticated = True
    display_name = "kim"

    @property
    def identity(self) -> str:
        raise NotImplementedError


class _Principal:
    is_authenticated = True
    identity = "u-7"
    tenant = "acme"


class _Anonymous:
    is_authenticated = False
    identity = "u-7"


def test_scope_caller_reads_the_scopes_user_only() -> None:
    assert context.scope_caller({"user": _Principal()}) == ("u-7", "acme")
    assert context.scope_caller({"user": _Simple()}) == ("kim", None)
    assert context.scope_caller({"user": _Anonymous()}) == (None, None)
    assert context.scope_caller({}) == (None, None)
    with context.request_context(user_id="earlier"):
        assert context.scope_caller({}) == (None, None)
