"""The deployment files load through Ray's own validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_passes_the_cluster_launchers_validation() -> None:
    raw: dict[str, Any] = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    prepared = prepare_config(raw)  # what `ray up` does before it validates
    validate_config(prepared)
    assert prepared["provider"]["type"] == "local"
    node_types = prepared["available_node_types"]
    assert prepared["head_node_type"] in node_types
    assert sum(t["max_workers"] for t in node_types.values()) == len(raw["provider"]["worker_ips"])
    setup = " ".join(prepared["setup_commands"])
    assert "pip install" in setup
    assert "RAY_SERVE_ENABLE_HA_PROXY=1" in setup


def test_serve_config_passes_serves_schema_and_its_import_path_resolves() -> None:
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config = ServeDeploySchema.model_validate(raw)
    assert config.proxy_location == "EveryNode"
    (app,) = config.applications
    module_name, _, attr = app.import_path.partition(":")
    module = __import__(module_name, fromlist=[attr])
    assert callable(getattr(module, attr))
    (deployment,) = app.deployments
    assert deployment.name == "ApiIngress"
    autoscaling = deployment.autoscaling_config
    assert isinstance(autoscaling, dict)
    assert autoscaling["min_replicas"] >= 2
