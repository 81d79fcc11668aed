"""A supplier host answers every call of a supplier's actor with the supplier's id first
(`actors.remote.bound` puts it there): the two protocols must declare the same calls."""

from __future__ import annotations

import inspect

from actors.interfaces import SupplierActorCalls, SupplierHostCalls
from actors.supplier_actor import SupplierHost


def _calls(proto: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(inspect.unwrap(fn))
        for name, fn in inspect.getmembers(proto, callable)
        if not name.startswith("_")
    }


def test_the_host_declares_each_supplier_call_with_the_supplier_id_first() -> None:
    actor = _calls(SupplierActorCalls)
    host = _calls(SupplierHostCalls)
    assert set(actor) <= set(host)
    for name, sig in actor.items():
        params = list(host[name].parameters.values())
        assert [p.name for p in params[:2]] == ["self", "supplier_id"], name
        assert params[2:] == list(sig.parameters.values())[1:], name
        assert host[name].return_annotation == sig.return_annotation, name


def test_the_host_class_implements_every_declared_call() -> None:
    host_class = _calls(SupplierHost)
    for name, sig in _calls(SupplierHostCalls).items():
        assert name in host_class, name
        # (Ray adds a tracing parameter of its own to an actor class's methods.)
        params = [p for p in host_class[name].parameters if p != "_ray_trace_ctx"]
        assert params == list(sig.parameters), name
