"""Frozen dataclasses that cross a process often, pickled as their class and field values.

An order's answer crosses to the API replica on every call, with a dozen frozen dataclasses
in it (history entries, tickets, attendees). The standard pickler handles a frozen, slotted
dataclass through the `__getstate__` and `__setstate__` that `dataclasses` writes for it:
Python code that calls `dataclasses.fields()` for every object, both ways. `by_fields`
replaces that with `(cls, values)`: the values taken by one C call, the object rebuilt by its
own `__init__` (so `__post_init__` checks it again, as it checked the original).

Measured on this machine (a three-field class, protocol 5): 7.8 µs to pickle and 7.6 µs to
unpickle one alone, 5.0 and 3.9 µs with `by_fields`.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def by_fields(cls: type[T]) -> type[T]:
    """Decorate a (frozen) dataclass, above `@dataclass`, whose fields are all `__init__`
    arguments: it pickles as `(cls, (field values, in order))`."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    # `cls(*values)` must rebuild it: its __init__ takes exactly the fields, in order, each by
    # position (no `init=False` or keyword-only field, no InitVar).
    parameters = list(inspect.signature(cls).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if (
        not names
        or [p.name for p in parameters] != names
        or any(p.kind not in positional for p in parameters)
    ):
        raise TypeError(f"{cls.__qualname__}: every field must be an __init__ argument")
    values: Callable[[Any], tuple[Any, ...]]
    if len(names) == 1:
        (name,) = names
        values = lambda obj: (getattr(obj, name),)  # noqa: E731 (attrgetter of one is no tuple)
    else:
        values = operator.attrgetter(*names)

    def __reduce__(self: T) -> tuple[type[T], tuple[Any, ...]]:
        return (cls, values(self))

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls
