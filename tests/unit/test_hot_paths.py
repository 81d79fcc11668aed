"""The lean dispatcher must serve exactly the routes FastAPI declares for those paths, and
never shadow another route."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from serve_app import hot_paths
from serve_app.app import app
from serve_app.deployment import ApiIngress

assert ApiIngress is not None  # importing the deployment includes every router

HOT = {
    ("GET", "/healthz"),
    ("GET", "/v1/shows/{show_id}"),
    ("GET", "/v1/orders/{order_id}"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/orders/{order_id}/issue"),
    ("POST", "/v1/orders/{order_id}/cancel"),
}


def declared_routes() -> list[tuple[str, str]]:
    found = []
    for route in app.router.routes:
        candidates = getattr(route, "effective_route_contexts", None)
        routes = [c.original_route for c in candidates()] if candidates is not None else [route]
        for r in routes:
            if isinstance(r, APIRoute):
                found += [(m, r.path_format) for m in sorted(r.methods or ())]
    return found


def sample(path_format: str) -> str:
    return re.sub(r"\{[^}]+\}", "abc_123", path_format)


def test_every_hot_path_is_a_declared_route() -> None:
    assert set(declared_routes()) >= HOT


def test_hot_paths_take_exactly_the_hot_routes() -> None:
    routes = declared_routes()
    assert len(routes) > 30
    for method, path_format in routes:
        taken = hot_paths.match(method, sample(path_format)) is not None
        assert taken == ((method, path_format) in HOT), (method, path_format)


def test_path_parameters_are_passed_and_other_shapes_fall_through() -> None:
    found = hot_paths.match("POST", "/v1/orders/ord_9/issue")
    assert found is not None
    assert found[1] == ["ord_9"]
    assert hot_paths.match("POST", "/v1/orders/ord_9/refund") is None
    assert hot_paths.match("GET", "/v1/orders/") is None
    assert hot_paths.match("GET", "/v1/orders/a/b") is None
    assert hot_paths.match("DELETE", "/v1/orders/ord_9") is None
