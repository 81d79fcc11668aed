"""Fault knobs of the sandbox supplier: parsing them and deciding, per call, what goes wrong.

Pure (no I/O); the server turns a `Plan` into sleeps and answers. The knobs of one operation:

- `latency_ms`: every call waits this long before it is handled.
- `error_rate`: the call answers 503 and nothing is done.
- `refuse_rate`: the call answers 409 `refused` (a definitive refusal) and nothing is done.
- `hang_rate`: the call is held `hang_ms` (default 30000) longer, then handled normally; an issue
  is reported `pending` by the issue query meanwhile.
- `lost_response_rate`: the call is handled, then answers 503 as if the response was lost.

The rolls are made in that order (error, refuse, hang, lost response), each with its own draw,
and only for knobs that are set, so an unconfigured operation costs one dictionary lookup.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

OPS: tuple[str, ...] = (
    "lock",
    "release",
    "issue",
    "query_issue",
    "refund",
    "query_refund",
    "catalog",
    "supplier_refunds",
    "delivery_updates",
)

DEFAULT_HANG_MS = 30_000
_RATES = ("error_rate", "hang_rate", "lost_response_rate", "refuse_rate")
_DURATIONS = ("latency_ms", "hang_ms")


class FaultError(ValueError):
    """A fault configuration that cannot be applied."""


class Action(Enum):
    PERFORM = "perform"
    ERROR = "error"
    REFUSE = "refuse"
    LOSE_RESPONSE = "lose_response"


@dataclass(frozen=True, slots=True)
class OpFaults:
    latency_ms: int = 0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    hang_ms: int = DEFAULT_HANG_MS
    lost_response_rate: float = 0.0
    refuse_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    delay_s: float = 0.0
    hung: bool = False


NO_FAULT = Plan(Action.PERFORM)


def parse_faults(payload: object) -> tuple[dict[str, OpFaults], int | None]:
    """Validate a `PUT /admin/faults` body; returns the knobs per operation and the seed."""
    if not isinstance(payload, Mapping):
        raise FaultError("the fault configuration must be a JSON object")
    faults: dict[str, OpFaults] = {}
    seed: int | None = None
    for key, value in payload.items():
        if key == "seed":
            if value is not None and (type(value) is not int):
                raise FaultError("seed must be an integer")
            seed = value
            continue
        if key not in OPS:
            raise FaultError(f"unknown operation {key!r}; expected one of {', '.join(OPS)}")
        faults[key] = _parse_op(key, value)
    return faults, seed


def _parse_op(op: str, value: object) -> OpFaults:
    if not isinstance(value, Mapping):
        raise FaultError(f"{op}: the knobs must be a JSON object")
    unknown = set(value) - set(_RATES) - set(_DURATIONS)
    if unknown:
        raise FaultError(f"{op}: unknown knob(s) {', '.join(sorted(unknown))}")
    knobs: dict[str, Any] = {}
    for name in _DURATIONS:
        if name in value:
            v = value[name]
            if type(v) is not int or v < 0:
                raise FaultError(f"{op}.{name} must be a non-negative integer")
            knobs[name] = v
    for name in _RATES:
        if name in value:
            v = value[name]
            if type(v) not in (int, float) or not 0 <= v <= 1:
                raise FaultError(f"{op}.{name} must be a number from 0 to 1")
            knobs[name] = float(v)
    return OpFaults(**knobs)


class FaultInjector:
    """Holds the live knobs and the random source; `plan(op)` decides one call's fate."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._faults: dict[str, OpFaults] = {}
        self._seed: int | None = None

    def configure(self, faults: dict[str, OpFaults], seed: int | None) -> None:
        self._faults = faults
        self._seed = seed
        if seed is not None:
            self._rng.seed(seed)

    def clear(self) -> None:
        self._faults = {}
        self._seed = None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {op: asdict(f) for op, f in self._faults.items()}
        if self._seed is not None:
            described["seed"] = self._seed
        return described

    def plan(self, op: str) -> Plan:
        f = self._faults.get(op)
        if f is None:
            return NO_FAULT
        rng = self._rng
        delay = f.latency_ms / 1000
        if f.error_rate and rng.random() < f.error_rate:
            return Plan(Action.ERROR, delay)
        if f.refuse_rate and rng.random() < f.refuse_rate:
            return Plan(Action.REFUSE, delay)
        hung = bool(f.hang_rate) and rng.random() < f.hang_rate
        if hung:
            delay += f.hang_ms / 1000
        lost = bool(f.lost_response_rate) and rng.random() < f.lost_response_rate
        return Plan(Action.LOSE_RESPONSE if lost else Action.PERFORM, delay, hung)
