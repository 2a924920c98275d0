"""``@cached``: cache the results of async and sync functions and methods, and invalidate them."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aegis.cache._keys import KeyBuilder, function_id
from aegis.cache._metrics import Labels
from aegis.cache._stampede import FillOptions
from aegis.cache._ttl import TTL
from aegis.core.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    # Annotations only: Cache.cached() and Cache.invalidate() hand the cache to this module.
    from aegis.cache._client import Cache

_F = TypeVar("_F", bound=Callable[..., Any])

_default: list[Cache] = []


def set_default_cache(cache: Cache | None) -> None:
    """Make ``cache`` the one ``@cached`` functions without ``cache=`` use (None clears it)."""
    _default.clear()
    if cache is not None:
        _default.append(cache)


def get_default_cache() -> Cache:
    """Return the cache set with :func:`set_default_cache`.

    Raises:
        ConfigurationError: none was set.
    """
    if not _default:
        raise ConfigurationError(
            "no default cache: call aegis.cache.set_default_cache(Cache(settings)) at startup "
            "or pass cache= to @cached",
            details={"setting": "default_cache"},
        )
    return _default[0]


@dataclass
class CachedSpec:
    """How one decorated function is cached (read by :func:`invalidate`)."""

    func: Callable[..., Any]
    keys: KeyBuilder
    namespace: str | None
    version: str | None
    ttl: TTL | None
    tags: Sequence[str] | Callable[..., Sequence[str]]
    cache_none: bool
    unless: Callable[[Any], bool] | None
    lock: bool
    early_ttl: float | None
    cache: Cache | None
    _type: Any = None
    _typed: bool = False
    _head: tuple[Cache, str] | None = None

    def resolve(self) -> Cache:
        """The cache this function uses now."""
        return self.cache if self.cache is not None else get_default_cache()

    def full_key(self, cache: Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The full Redis key of the call ``func(*args, **kwargs)``."""
        head = self._head
        if head is None or head[0] is not cache:
            namespace = f"{self.namespace}:" if self.namespace else ""
            version = cache.settings.version + (f".{self.version}" if self.version else "")
            # A key template is the caller's own key: kept exactly, without a version.
            versioned = "" if self.keys.templated else f"v{version}:"
            head = self._head = (cache, f"{cache.prefix}{namespace}{versioned}")
        return head[1] + self.keys(args, kwargs)

    def return_type(self) -> Any:
        """The declared return type, used to validate cached values back (None: as stored)."""
        if not self._typed:
            try:
                hint = typing.get_type_hints(self.func).get("return")
            except (NameError, TypeError):
                hint = None
            self._type = None if hint in (None, Any, type(None)) else hint
            self._typed = True
        return self._type

    def tags_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Sequence[str]:
        """Tags of one call: templates (``"user:{user_id}"``) formatted with its arguments."""
        if callable(self.tags):
            return list(self.tags(*args, **kwargs))
        if not any("{" in tag for tag in self.tags):
            return self.tags
        arguments = self.keys.bind(args, kwargs)
        return [tag.format(**arguments) for tag in self.tags]

    def should_store(self, value: Any) -> bool:
        """Whether a computed value is cached (``cache_none``, ``unless``)."""
        if value is None and not self.cache_none:
            return False
        return not (self.unless is not None and self.unless(value))


async def cached_call(
    cache: Cache,
    spec: CachedSpec,
    full_key: str,
    compute: Callable[..., Awaitable[Any]],
    *,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """The body of every decorated call: hit, early refresh, or a stampede-safe fill.

    ``compute(*args, **kwargs)`` is called only on a miss or a refresh.
    """
    labels: Labels = cache.labels if spec.namespace is None else cache.labels_for(spec.namespace)
    data = await cache.store.read(full_key, labels)
    if data is None or (spec.early_ttl is not None and cache.stampede.needs_refresh(data)):
        factory = functools.partial(compute, *args, **kwargs)
        options = FillOptions(
            labels,
            ttl=spec.ttl,
            tags=spec.tags_for(args, kwargs),
            lock=spec.lock,
            type_=spec.return_type(),
            store=spec.should_store,
            early_ttl=spec.early_ttl,
        )
        if data is None:
            return await cache.stampede.fill(full_key, factory, options)
        cache.stampede.refresh_in_background(full_key, factory, options)
    return cache.codec.decode(data, spec.return_type())


def cached(
    ttl: TTL | None = None,
    *,
    key: str | Callable[..., str] | None = None,
    namespace: str | None = None,
    version: str | None = None,
    tags: Sequence[str] | Callable[..., Sequence[str]] = (),
    cache_none: bool = False,
    unless: Callable[[Any], bool] | None = None,
    lock: bool = True,
    early_ttl: float | None = None,
    cache: Cache | None = None,
) -> Callable[[_F], _F]:
    """Cache the results of an async or sync function or method.

    Example:
        >>> @cached(ttl=60, tags=["user:{user_id}"])
        ... async def load_user(user_id: int) -> User: ...
        >>> await invalidate(load_user, 42)

    Args:
        ttl: seconds or timedelta; the cache's default TTL when None.
        key: a template formatted with the arguments (``"user:{user_id}"``) or a callable
            returning the key; by default ``<module>.<qualname>:<hash of the arguments>``.
        namespace: a key segment and the metrics' ``namespace`` label for this function.
        version: bump it when the function's result changes shape; the cache's
            ``settings.version`` invalidates every decorated function at once.
        tags: tags (templates allowed) or a callable returning them, for
            :meth:`Cache.invalidate_tags`.
        cache_none: also cache a ``None`` result.
        unless: a predicate on the result; when true the result is not cached.
        lock: across processes, let one compute a missing value while the others wait for it.
        early_ttl: recompute in the background once an entry has less than this many seconds
            left, while callers still get the current value.
        cache: the cache to use; :func:`get_default_cache` at call time when None.

    Raises:
        CacheKeyError: ``key`` names an unknown parameter (at decoration time), or an argument
            has no stable value (at call time).
    """
    if early_ttl is not None and early_ttl <= 0:
        raise InvalidInputError("early_ttl must be positive", field="early_ttl", rule="positive")

    def decorate(func: _F) -> _F:
        spec = CachedSpec(
            func=func,
            keys=KeyBuilder(func, key),
            namespace=namespace,
            version=version,
            ttl=ttl,
            tags=tags,
            cache_none=cache_none,
            unless=unless,
            lock=lock,
            early_ttl=early_ttl,
            cache=cache,
        )
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                target = spec.cache if spec.cache is not None else get_default_cache()
                full_key = spec.full_key(target, args, kwargs)
                return await cached_call(target, spec, full_key, func, args=args, kwargs=kwargs)

            wrapper: Callable[..., Any] = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                target = spec.cache if spec.cache is not None else get_default_cache()
                full_key = spec.full_key(target, args, kwargs)
                compute = _in_a_worker_thread(func, contextvars.copy_context())

                def work(twin: Cache) -> Coroutine[Any, Any, Any]:
                    return cached_call(twin, spec, full_key, compute, args=args, kwargs=kwargs)

                return target.run_sync(work)

            wrapper = sync_wrapper
        wrapper.__aegis_cached__ = spec  # type: ignore[attr-defined]
        return cast("_F", wrapper)

    return decorate


def spec_of(func: Callable[..., Any]) -> CachedSpec:
    """The :class:`CachedSpec` of a ``@cached`` function (also a bound method of one)."""
    spec = getattr(func, "__aegis_cached__", None)
    if spec is None:
        raise InvalidInputError(
            f"{function_id(func)} is not decorated with @cached", field="func", rule="cached"
        )
    return cast("CachedSpec", spec)


async def invalidate(func: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Delete the cached result of ``func(*args, **kwargs)``; True when there was one.

    For a method pass the instance first (``invalidate(Repo.load, repo, 42)``) or use the
    bound method (``invalidate(repo.load, 42)``).
    """
    bound_to = getattr(func, "__self__", None)
    if bound_to is not None:
        args = (bound_to, *args)
    spec = spec_of(func)
    cache = spec.resolve()
    return await cache.store.delete([spec.full_key(cache, args, kwargs)]) > 0


def _in_a_worker_thread(
    func: Callable[..., Any], context: contextvars.Context
) -> Callable[..., Awaitable[Any]]:
    """``func`` as a coroutine function that runs it in the loop's executor, in ``context``."""

    async def compute(*args: Any, **kwargs: Any) -> Any:
        call = functools.partial(context.run, func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    return compute
