"""How often to ask a supplier about an issue whose outcome is unknown, and for how long.

The policy follows the supplier's live statistics (docs/design.md, "Adaptive polling"):

    interval = clamp((BASE_INTERVAL + 4 * p95_latency) * (1 + 4 * unknown_rate),
                     MIN_INTERVAL, MAX_INTERVAL)
    give_up  = clamp(POLLS * interval / max(success_rate, 0.1), MIN_GIVE_UP, MAX_GIVE_UP)

with BASE_INTERVAL = 2 s, POLLS = 30, MIN_INTERVAL = 1 s, MAX_INTERVAL = 5 min,
MIN_GIVE_UP = 1 min, MAX_GIVE_UP = 24 h. A fast, reliable supplier (p95 50 ms, no unknown
results, 100 % success) is asked every ~2.2 s for ~66 s; a slow, flaky one (p95 5 s, 20 %
unknown, 70 % success) every ~40 s for ~28 min. The reasoning: waiting several p95 latencies
between polls gives a slow supplier time to finish what it is doing; unknown results mean its
answers are less informative, so each poll is spaced further; a low success rate means its
backlog clears more slowly, so we keep asking for longer before asking a person. An operator's
override (per supplier) replaces either figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class NegotiationKind(StrEnum):
    """What the supplier is being asked about: an issue or a refund whose outcome is unknown."""

    ISSUE = "issue"
    REFUND = "refund"


class NegotiationStatus(StrEnum):
    ACTIVE = "active"  # the supplier actor polls it
    FLAGGED = "flagged"  # past its give-up time: a person decides
    RESOLVED = "resolved"


# Negotiations that still stand for their order (a timer leaves such an order alone).
OPEN_NEGOTIATION = frozenset({NegotiationStatus.ACTIVE, NegotiationStatus.FLAGGED})


class Resolution(StrEnum):
    """How a negotiation ended."""

    DONE = "done"  # a poll answered: the supplier did it
    FAILED = "failed"  # a poll answered: the supplier definitely did not
    OPERATOR_CANCEL = "operator_cancel"
    OPERATOR_ISSUED = "operator_issued"
    SUPPLIER_FEED = "supplier_feed"  # the supplier's own refund feed settled it
    SUPERSEDED = "superseded"  # the order had moved on by the time the answer came


BASE_INTERVAL_S = 2.0
POLLS = 30
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 300.0
MIN_GIVE_UP_S = 60.0
MAX_GIVE_UP_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SupplierHealth:
    success_rate: float  # 0..1 over the recent window
    unknown_rate: float  # 0..1
    latency_p95_ms: float


@dataclass(frozen=True, slots=True)
class PollingPolicy:
    interval: timedelta
    give_up_after: timedelta
    adaptive: bool  # False when an operator override decided either figure


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def polling_policy(
    health: SupplierHealth,
    *,
    interval_override_ms: int | None = None,
    give_up_override_ms: int | None = None,
) -> PollingPolicy:
    p95_s = max(0.0, health.latency_p95_ms) / 1000.0
    unknown = _clamp(health.unknown_rate, 0.0, 1.0)
    success = _clamp(health.success_rate, 0.0, 1.0)
    interval_s = _clamp(
        (BASE_INTERVAL_S + 4.0 * p95_s) * (1.0 + 4.0 * unknown), MIN_INTERVAL_S, MAX_INTERVAL_S
    )
    if interval_override_ms is not None:
        interval_s = interval_override_ms / 1000.0
    give_up_s = _clamp(POLLS * interval_s / max(success, 0.1), MIN_GIVE_UP_S, MAX_GIVE_UP_S)
    if give_up_override_ms is not None:
        give_up_s = give_up_override_ms / 1000.0
    return PollingPolicy(
        interval=timedelta(seconds=interval_s),
        give_up_after=timedelta(seconds=give_up_s),
        adaptive=interval_override_ms is None and give_up_override_ms is None,
    )


def backoff(attempts: int, *, base_s: float = 1.0, cap_s: float = 300.0) -> timedelta:
    """Exponential backoff for retried deliveries (callbacks, releases): base * 2^attempts."""
    return timedelta(seconds=min(cap_s, base_s * (2 ** min(attempts, 30))))


def next_poll(now: datetime, policy: PollingPolicy) -> datetime:
    return now + policy.interval
