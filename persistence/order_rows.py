"""The one mapping from an order move to its rows.

`plan_move` turns a move (the order row's values and the facts the move recorded) into a
`MovePlan`: the rows of every table it inserts, the negotiation changes, and whether the
order's documents are freed. The plan is then written either as SQLAlchemy statements in
one transaction (`persistence/orders.py`, every database) or, on PostgreSQL, as one
statement (`persistence/pg_moves.py`); neither of them knows what a fact means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Table

from domain.callbacks import callbacks_implied, courier_shard
from domain.flows import flows_implied
from domain.negotiation import NegotiationStatus
from domain.order import (
    DeliveryChanged,
    DocumentsFreed,
    Moved,
    NegotiationClosed,
    NegotiationOpened,
    Order,
    SeatsToRelease,
    SupplierRefundRecorded,
    TicketsIssued,
)
from persistence.ledger import flow_rows
from persistence.tables import order_history, outbox, releases, supplier_refunds, tickets


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows inserted into one table, in this order. `ignore_duplicates`: a row whose key is
    there already is the same work done before (INSERT … ON CONFLICT DO NOTHING)."""

    table: Table
    rows: list[dict[str, Any]]
    ignore_duplicates: bool = False


@dataclass(frozen=True, slots=True)
class OpenNegotiation:
    """The negotiation of the row's kind, replaced by this row (a retry opens it afresh)."""

    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CloseNegotiation:
    """The open negotiation of `kind` resolved (a closed one keeps its first resolution)."""

    kind: str
    resolution: str
    at: datetime


@dataclass(slots=True)
class MovePlan:
    order_id: str
    # The order row: every column for an insert (`expected_version` None), else the columns
    # a move changes, with the new version, written only if the row is at `expected_version`.
    order_row: dict[str, Any]
    expected_version: int | None
    inserts: list[TableRows] = field(default_factory=list)
    # The ledger's rows, in basis-time order (the order their periods are locked in), each
    # without its booked period: that is decided against the periods table when written.
    flows: list[dict[str, Any]] = field(default_factory=list)
    negotiations: list[OpenNegotiation | CloseNegotiation] = field(default_factory=list)
    # A real-name order's documents: claimed with its NEW row, freed when it lets its seats go.
    claims_documents: bool = False
    frees_documents: bool = False

    @property
    def basis_periods(self) -> list[str]:
        """The days the flows are booked into when every one of them is open."""
        return sorted({f["basis_period"] for f in self.flows})


def plan_move(
    order: Order,
    *,
    order_row: dict[str, Any],
    expected_version: int | None,
    first_seq: int,
    tz: tzinfo,
) -> MovePlan:
    """Every row the order's unsaved facts imply, with the order row itself."""
    plan = MovePlan(order.id, order_row, expected_version)
    plan.claims_documents = expected_version is None and bool(order.attendees)
    history: list[dict[str, Any]] = []
    issued: list[dict[str, Any]] = []
    released: list[dict[str, Any]] = []
    refunds: list[dict[str, Any]] = []
    for fact in order.facts:
        match fact:
            case Moved(entry):
                history.append(
                    {
                        "order_id": order.id,
                        "seq": first_seq + len(history),
                        "status": entry.status.value,
                        "at": entry.at,
                        "reason": entry.reason,
                    }
                )
            case TicketsIssued(tix):
                issued += [{"order_id": order.id, "code": t.code, "seat": t.seat} for t in tix]
            case SeatsToRelease(at):
                # A second release of the same order is the same work: the key makes it a no-op.
                released.append(
                    {
                        "order_id": order.id,
                        "supplier_id": order.supplier_id,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": at,
                        "created_at": at,
                    }
                )
            case NegotiationOpened(kind, started_at, next_poll_at, give_up_at):
                plan.negotiations.append(
                    OpenNegotiation(
                        {
                            "order_id": order.id,
                            "kind": kind.value,
                            "supplier_id": order.supplier_id,
                            "status": NegotiationStatus.ACTIVE.value,
                            "started_at": started_at,
                            "next_poll_at": next_poll_at,
                            "give_up_at": give_up_at,
                            "attempts": 0,
                        }
                    )
                )
            case NegotiationClosed(kind, resolution, at):
                plan.negotiations.append(CloseNegotiation(kind.value, resolution.value, at))
            case SupplierRefundRecorded(refund, at):
                refunds.append(
                    {
                        "order_id": order.id,
                        "supplier_id": order.supplier_id,
                        "refunded_at": refund.refunded_at,
                        "initiated_by": refund.initiated_by,
                        "recorded_at": at,
                    }
                )
            case DeliveryChanged():
                pass  # the order row carries it; its callback is derived below
            case DocumentsFreed():
                plan.frees_documents = True
    bodies = callbacks_implied(order, order.facts)
    messages = [
        {
            "order_id": order.id,
            "distributor_id": order.distributor_id,
            "shard": courier_shard(order.id),
            "url": order.callback_url,
            "body": b,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": order.updated_at,
            "created_at": order.updated_at,
        }
        for b in bodies
    ]
    for table, rows, ignore in (
        (tickets, issued, False),
        (releases, released, True),
        (supplier_refunds, refunds, True),
        (order_history, history, False),
        (outbox, messages, False),
    ):
        if rows:
            plan.inserts.append(TableRows(table, rows, ignore))
    plan.flows = flow_rows(flows_implied(order, order.facts), tz=tz, now=order.updated_at)
    return plan
