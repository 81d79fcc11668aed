from __future__ import annotations

from domain.sold_out import SoldOutView

T = "tir_1"


def _told(view: SoldOutView, quantity: int, at: float) -> None:
    view.answered(T, quantity, sold_out=True, asked_at=at, now=at)


def test_nothing_is_known_until_the_supplier_says_it() -> None:
    view = SoldOutView(2.0)
    assert not view.check(T, 1, 0.0)
    view.answered(T, 1, sold_out=False, asked_at=0.0, now=0.1)
    assert not view.check(T, 1, 0.2)
    assert view.known(T) is None


def test_a_sold_out_answer_refuses_that_quantity_and_more_while_fresh() -> None:
    view = SoldOutView(2.0)
    _told(view, 2, 10.0)
    assert view.check(T, 2, 11.0)
    assert view.check(T, 5, 12.0)
    assert not view.check(T, 1, 11.0)  # one seat may still be there: ask
    assert not view.check("tir_other", 2, 11.0)


def test_an_old_view_lets_one_probe_through_and_refuses_the_rest_meanwhile() -> None:
    view = SoldOutView(2.0)
    _told(view, 1, 10.0)
    assert not view.check(T, 1, 12.5)  # the probe
    assert view.check(T, 1, 12.6)  # the others wait for its answer, refused
    assert view.check(T, 3, 12.7)
    _told(view, 1, 12.8)  # the probe: still sold out, the view is fresh again
    assert view.check(T, 1, 14.7)
    assert not view.check(T, 1, 14.9)  # old again: the next probe


def test_a_probe_that_got_seats_or_failed_otherwise_clears_the_view() -> None:
    view = SoldOutView(2.0)
    _told(view, 1, 0.0)
    assert not view.check(T, 1, 3.0)
    view.answered(T, 1, sold_out=False, asked_at=3.0, now=3.1)
    assert view.known(T) is None
    assert not view.check(T, 1, 3.2)
    assert not view.check(T, 1, 3.3)  # no probe pending: nothing refused


def test_seats_locked_by_a_lock_asked_after_the_mark_clear_it_an_older_one_does_not() -> None:
    view = SoldOutView(2.0)
    _told(view, 2, 5.0)
    view.answered(T, 2, sold_out=False, asked_at=4.9, now=5.1)  # asked before: old news
    assert view.check(T, 2, 5.2)
    view.answered(T, 1, sold_out=False, asked_at=5.3, now=5.4)  # fewer seats: no news of 2
    assert view.check(T, 2, 5.5)
    view.answered(T, 3, sold_out=False, asked_at=5.6, now=5.7)  # 3 seats were there
    assert not view.check(T, 2, 5.8)


def test_a_fresh_view_keeps_the_smallest_quantity_refused() -> None:
    view = SoldOutView(2.0)
    _told(view, 4, 0.0)
    _told(view, 2, 0.5)
    assert view.known(T) == 2
    _told(view, 3, 5.0)  # the old view had expired: this answer alone counts
    assert view.known(T) == 3


def test_zero_seconds_always_asks() -> None:
    view = SoldOutView(0.0)
    _told(view, 1, 0.0)
    assert not view.check(T, 1, 0.0)
    assert not view.check(T, 1, 0.0)  # not even one probe at a time: every create asks


def test_the_view_is_bounded() -> None:
    view = SoldOutView(2.0, max_tiers=3)
    for i in range(10):
        view.answered(f"t{i}", 1, sold_out=True, asked_at=0.0, now=0.0)
    assert sum(view.known(f"t{i}") is not None for i in range(10)) == 3
    assert view.known("t9") == 1
