"""A circuit breaker: after repeated failures stop calling a supplier for a while, then let
one probe through; its success closes the circuit again. Time is passed in (monotonic s)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown_s: float = 5.0
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probe_in_flight: bool = False

    def allow(self, now: float) -> bool:
        """May a call go to the supplier now? In HALF_OPEN only one probe at a time."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if now - self.opened_at < self.cooldown_s:
                return False
            self.state = CircuitState.HALF_OPEN
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def record_success(self) -> None:
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self.probe_in_flight = False

    def record_failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.state is CircuitState.HALF_OPEN or (
            self.consecutive_failures >= self.failure_threshold
        ):
            self.state = CircuitState.OPEN
            self.opened_at = now
        self.probe_in_flight = False

    def record_neutral(self) -> None:
        """A definite business answer (sold out, refused): the supplier is up."""
        self.record_success()
