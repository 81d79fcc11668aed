"""Orders' partitions and their assignment to order hosts (pure rules; docs/design.md,
"Order hosts that scale").

Every order belongs to one of `PARTITIONS` partitions, a hash of its id fixed for the life of
the database (the callback outbox's courier shard is the same hash: `domain.callbacks`). An
assignment says which order host owns each partition; a partition being moved also names the
host it goes to (`moving_to`), until its old host has handed it over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.errors import Refusal
from domain.ids import stable_shard

PARTITIONS = 256
MAX_ORDER_HOSTS = 64  # ops may ask for 1..64 hosts (at least 4 partitions each)


def partition_of(order_id: str) -> int:
    return stable_shard(order_id, PARTITIONS)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who owns each partition (`owners[p]`), where the ones being moved go (`moving_to`),
    the number of hosts asked for, and a version that grows with every change."""

    owners: tuple[int, ...]
    moving_to: Mapping[int, int]
    hosts: int
    version: int

    def owner(self, partition: int) -> int:
        return self.owners[partition]

    def host_for(self, order_id: str) -> int:
        return self.owners[partition_of(order_id)]

    def owned_by(self, host: int) -> frozenset[int]:
        return frozenset(p for p, h in enumerate(self.owners) if h == host)

    def leaving(self, host: int) -> frozenset[int]:
        """The partitions `host` owns and must hand over."""
        return frozenset(p for p, to in self.moving_to.items() if self.owners[p] == host)

    @property
    def settled(self) -> bool:
        return not self.moving_to

    def hosts_in_use(self) -> frozenset[int]:
        """Every host that owns a partition or is about to."""
        return frozenset(self.owners) | frozenset(self.moving_to.values())

    def counts(self) -> dict[int, int]:
        """Partitions per host, for each of the hosts asked for and any still owning some."""
        out = {h: 0 for h in range(self.hosts)}
        for h in self.owners:
            out[h] = out.get(h, 0) + 1
        return out


def initial(hosts: int) -> tuple[int, ...]:
    """The owners of a new database's partitions: round robin over `hosts`."""
    check_hosts(hosts)
    return tuple(p % hosts for p in range(PARTITIONS))


def check_hosts(hosts: int) -> None:
    if not 1 <= hosts <= MAX_ORDER_HOSTS:
        raise ValueError(f"order hosts must be 1..{MAX_ORDER_HOSTS}, not {hosts}")


def balanced(owners: Sequence[int], hosts: int) -> tuple[int, ...]:
    """Owners for `hosts` hosts that move as few partitions as possible: each host ends with
    PARTITIONS // hosts partitions or one more; a partition stays where it is whenever its
    host is kept and not over its share."""
    check_hosts(hosts)
    base, extra = divmod(PARTITIONS, hosts)
    # The hosts that already own the most get the larger shares (fewer moves).
    held = {h: 0 for h in range(hosts)}
    for h in owners:
        if h in held:
            held[h] += 1
    by_holding = sorted(range(hosts), key=lambda h: (-held[h], h))
    share = {h: base + (1 if rank < extra else 0) for rank, h in enumerate(by_holding)}
    kept = {h: 0 for h in range(hosts)}
    out: list[int | None] = []
    for h in owners:
        if h in share and kept[h] < share[h]:
            kept[h] += 1
            out.append(h)
        else:
            out.append(None)
    room = [h for h in range(hosts) for _ in range(share[h] - kept[h])]
    return tuple(room.pop() if h is None else h for h in out)


class NotOwned(Refusal):
    """A call for an order reached a host that does not own (or is handing over) the order's
    partition: nothing was done; the caller routes it again."""

    def __init__(self, order_id: str, host: int) -> None:
        super().__init__(order_id, host)
        self.order_id = order_id
        self.host = host

    def __str__(self) -> str:
        return f"order host {self.host} does not own the partition of {self.order_id}"
