"""Typed calls to Ray actors, and one classification of what can go wrong with them.

A Ray handle is untyped: ``handle.issue.remote(...)`` names a method mypy cannot check. Every
platform actor declares its calls once, as a `Protocol` in `actors.interfaces`, which the actor
class implements; callers hold `typed(handle, Protocol, role)`, an object of that protocol
whose methods send the call and await its answer. So mypy checks each call's name, arguments
and result on both sides.

A call's failure is one of three things:
- the actor could not be reached, or died while the call was in flight (it is restarting, or
  gone): `ActorUnavailable`, with `cause` None;
- the call raised inside the actor: a `Refusal` (a request the rules refuse) comes out as
  itself, for the caller to map; anything else (its database dropped, a bug) comes out as
  `ActorUnavailable` with the exception as `cause`. The actors keep their state consistent on
  disk (each move is one transaction), so asking again is safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypeVar, cast

from ray.exceptions import RayActorError, RayTaskError

from domain.errors import Refusal

P = TypeVar("P")


class ActorRole(StrEnum):
    ORDER_HOST = "order_host"
    SUPPLIER = "supplier"
    SETTLEMENT = "settlement"


class ActorUnavailable(Exception):
    def __init__(self, role: ActorRole, method: str, cause: BaseException | None) -> None:
        what = "unreachable" if cause is None else f"failed: {cause!r}"
        super().__init__(f"{role} actor call {method} {what}"[:500])
        self.role = role
        self.method = method
        self.cause = cause

    def __reduce__(
        self,
    ) -> tuple[type[ActorUnavailable], tuple[ActorRole, str, BaseException | None]]:
        return (type(self), (self.role, self.method, self.cause))


def _task_cause(exc: RayTaskError) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class _Proxy:
    def __init__(self, handle: Any, role: ActorRole, first: tuple[Any, ...] = ()) -> None:
        self._handle = handle
        self._role = role
        self._first = first  # arguments put before every call's own

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._handle, name)
        role = self._role
        first = self._first

        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            # Sent now, as `.remote()` sends it; what comes back is awaited (and classified)
            # by whoever awaits the result.
            return answer(method.remote(*first, *args, **kwargs))

        async def answer(ref: Any) -> Any:
            try:
                return await ref
            except RayTaskError as exc:
                cause = _task_cause(exc)
                if isinstance(cause, Refusal):
                    raise cause from None
                if isinstance(cause, RayActorError):  # an actor it called was unreachable
                    raise ActorUnavailable(role, name, None) from exc
                raise ActorUnavailable(role, name, cause) from exc
            except RayActorError as exc:
                raise ActorUnavailable(role, name, None) from exc

        self.__dict__[name] = call  # found directly next time
        return call

    def __repr__(self) -> str:
        return f"typed({self._handle!r}, {self._role}, first={self._first!r})"


def typed(handle: Any, api: type[P], role: ActorRole) -> P:
    """`handle` seen as `api` (a protocol the actor implements): each method sends the call
    to the actor and awaits its answer."""
    del api  # only for the type
    return cast(P, _Proxy(handle, role))


def bound(handle: Any, key: str, api: type[P], role: ActorRole) -> P:
    """`handle`, an actor hosting many keyed actors (whose every call takes the key first),
    seen as the one actor of `key` (`api`: that actor's protocol). The host's protocol
    declares the same calls with the key first; `tests/unit/test_actor_protocols.py` checks
    that the two agree."""
    del api  # only for the type
    return cast(P, _Proxy(handle, role, (key,)))
