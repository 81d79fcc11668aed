"""Deterministic order ids and the stable shard hash that routes an order to its host."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.ids import new_id, order_id_for, stable_shard

ORDER_ID = re.compile(r"^ord_[a-z2-7]{24}$")
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# What the API lets a distributor put in distributor_order_id (serve_app/schemas.py).
distributor_order_ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-",
    min_size=1,
    max_size=128,
)
distributor_ids = st.builds(lambda: new_id("dst")) | st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
    min_size=1,
)


def test_order_id_is_deterministic_and_well_formed() -> None:
    first = order_id_for("dst_abc", "A-1001")
    assert first == order_id_for("dst_abc", "A-1001")
    assert ORDER_ID.match(first), first


def test_order_ids_differ_across_a_grid() -> None:
    distributors = [f"dst_{i}" for i in range(40)]
    their_ids = [f"o-{j}" for j in range(40)]
    ids = {order_id_for(d, o) for d, o in itertools.product(distributors, their_ids)}
    assert len(ids) == 40 * 40


def test_same_order_id_at_two_distributors_gives_two_orders() -> None:
    assert order_id_for("dst_a", "1001") != order_id_for("dst_b", "1001")


@pytest.mark.parametrize(
    ("naive_separator", "left", "right"),
    [
        ("", ("dst_a", "bc"), ("dst_ab", "c")),
        (":", ("dst_a", "b:c"), ("dst_a:b", "c")),
        ("_", ("dst_a", "b_c"), ("dst_a_b", "c")),
        ("-", ("dst_a", "b-c"), ("dst_a-b", "c")),
        (".", ("dst_a", "b.c"), ("dst_a.b", "c")),
        ("", ("a", ""), ("", "a")),
    ],
    ids=["concat", "colon", "underscore", "dash", "dot", "empty-part"],
)
def test_pairs_that_a_naive_join_would_merge_get_distinct_ids(
    naive_separator: str, left: tuple[str, str], right: tuple[str, str]
) -> None:
    # Each case collides under `naive_separator.join`, with a separator the API allows in
    # distributor_order_id; the real id must still tell the two orders apart.
    assert naive_separator.join(left) == naive_separator.join(right)
    assert order_id_for(*left) != order_id_for(*right)


def test_swapping_the_parts_changes_the_id() -> None:
    assert order_id_for("dst_a", "dst_b") != order_id_for("dst_b", "dst_a")


@given(a=distributor_ids, b=distributor_order_ids, c=distributor_ids, d=distributor_order_ids)
def test_distinct_pairs_give_distinct_ids(a: str, b: str, c: str, d: str) -> None:
    if (a, b) != (c, d):
        assert order_id_for(a, b) != order_id_for(c, d)
    else:
        assert order_id_for(a, b) == order_id_for(c, d)


def test_a_nul_inside_an_id_does_not_collide() -> None:
    assert order_id_for("dst_a\x00x", "y") != order_id_for("dst_a", "x\x00y")


def test_stable_shard_is_the_same_across_calls() -> None:
    keys = [order_id_for("dst_a", str(i)) for i in range(200)]
    assert [stable_shard(k, 8) for k in keys] == [stable_shard(k, 8) for k in keys]


def test_stable_shard_is_the_same_in_another_process() -> None:
    # The reason it exists: str hash() is salted per process, so two hosts would disagree.
    keys = [order_id_for("dst_a", str(i)) for i in range(50)]
    here = [stable_shard(k, 7) for k in keys]
    script = (
        "import sys\n"
        "from domain.ids import stable_shard\n"
        "keys = sys.stdin.read().split()\n"
        "print(' '.join(str(stable_shard(k, 7)) for k in keys))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(PROJECT_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=" ".join(keys),
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert [int(s) for s in out.stdout.split()] == here


@given(key=st.text(alphabet=st.characters(blacklist_categories=["Cs"])), shards=st.integers(1, 64))
def test_stable_shard_is_in_range(key: str, shards: int) -> None:
    assert 0 <= stable_shard(key, shards) < shards


def test_one_shard_takes_everything() -> None:
    assert {stable_shard(f"k{i}", 1) for i in range(100)} == {0}


@pytest.mark.parametrize("shards", [2, 4, 7, 16])
def test_stable_shard_spreads_10k_order_ids(shards: int) -> None:
    keys = [order_id_for(f"dst_{i % 13}", f"order-{i}") for i in range(10_000)]
    counts = Counter(stable_shard(k, shards) for k in keys)
    fair = 10_000 // shards
    assert set(counts) == set(range(shards))
    # Loose: every host gets at least a fifth of its fair share.
    assert min(counts.values()) * 5 >= fair, counts


@pytest.mark.parametrize("shards", [0, -1, -8])
def test_stable_shard_rejects_non_positive_shard_counts(shards: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        stable_shard("ord_x", shards)
