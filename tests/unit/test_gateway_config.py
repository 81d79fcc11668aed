"""A supplier's configuration is its gateway kind's typed model, with ranges: nonsense is
refused by name before anything is stored."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from suppliers.registry import SandboxConfig, build_gateway, gateway_config
from suppliers.sandbox.gateway import SandboxGateway

GOOD = {"base_url": "http://127.0.0.1:8101"}


def test_a_good_config_builds_its_gateway_with_defaults() -> None:
    checked = gateway_config("sandbox", GOOD)
    assert checked == SandboxConfig(base_url="http://127.0.0.1:8101")
    assert (checked.timeout_s, checked.connect_timeout_s, checked.max_connections) == (
        5.0,
        1.0,
        100,
    )
    assert isinstance(build_gateway("sandbox", {**GOOD, "timeout_s": 2}), SandboxGateway)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_connections": float("inf")}, "max_connections"),  # JSON 1e400
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 10_000}, "max_connections"),
        ({"max_connections": "many"}, "max_connections"),
        ({"timeout_s": -0.9}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"connect_timeout_s": 0}, "connect_timeout_s"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": ""}, "base_url"),
        ({"timout_s": 1}, "timout_s"),  # a typo is refused, not dropped
    ],
)
def test_nonsense_is_refused_by_name(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        gateway_config("sandbox", {**GOOD, **extra})
    assert field in str(refused.value)


def test_an_unknown_kind_or_a_missing_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown supplier gateway kind"):
        gateway_config("nope", GOOD)
    with pytest.raises(ValidationError, match="base_url"):
        gateway_config("sandbox", {})
