"""What an API process knows of the tiers its supplier has just said are sold out: a stock
view at most `max_age_s` old, so that in a flash sale the attempts after the last seat are
refused without a supplier call each (docs/design.md, "Sold out, known").

The view learns only from the supplier: a lock the supplier refused `sold_out` for `q` seats
marks the tier as short of `q` (and of any larger quantity). While the mark is fresh, a create
for at least that many seats is known to be sold out. When it is older than `max_age_s`, the
next such create is let through to ask the supplier again (one probe at a time: the others
are still refused meanwhile, on a view that is then `max_age_s` plus one lock call old); the
probe's answer renews the mark, or a lock that got its seats clears it. A lock that
succeeded for at least the marked quantity clears the mark at once, and so does a probe
that ended any other way (the supplier failing, say): the view never refuses on a guess.

`max_age_s` 0 turns the view off: every create asks the supplier. Pure: the caller passes
monotonic seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Mark:
    short_of: int  # the smallest quantity the supplier refused as sold out
    at: float  # when it last said so
    probing: bool = False  # an attempt is asking the supplier again


class SoldOutView:
    def __init__(self, max_age_s: float, max_tiers: int = 10_000) -> None:
        self._max_age = max_age_s
        self._max = max_tiers
        self._marks: dict[str, _Mark] = {}

    def check(self, tier_id: str, quantity: int, now: float) -> bool:
        """True: this create is known to be sold out (refuse it, no supplier call). False:
        ask the supplier, and report how the lock ended with `answered`."""
        mark = self._marks.get(tier_id)
        if mark is None or quantity < mark.short_of or self._max_age <= 0:
            return False
        if now - mark.at <= self._max_age:
            return True
        if mark.probing:
            return True
        mark.probing = True  # this attempt asks the supplier again
        return False

    def answered(
        self, tier_id: str, quantity: int, *, sold_out: bool, asked_at: float, now: float
    ) -> None:
        """A lock of `quantity` seats asked of the supplier at `asked_at` ended: sold out, or
        not (locked, or failed some other way)."""
        mark = self._marks.get(tier_id)
        if sold_out:
            if mark is None:
                if len(self._marks) >= self._max:
                    self._marks.pop(next(iter(self._marks)))
                self._marks[tier_id] = _Mark(quantity, now)
            else:
                fresh = now - mark.at <= self._max_age
                mark.short_of = min(mark.short_of, quantity) if fresh else quantity
                mark.at = now
                mark.probing = False
        elif mark is not None and (
            mark.probing or (quantity >= mark.short_of and asked_at >= mark.at)
        ):
            del self._marks[tier_id]

    def known(self, tier_id: str) -> int | None:
        """The quantity the tier is marked short of (ops and tests), or None."""
        mark = self._marks.get(tier_id)
        return None if mark is None else mark.short_of
