"""Benchmarks. They run the production Serve set-up of serve_config.yaml: HAProxy as the
ingress (replicas serve HTTP themselves) and Serve's throughput-optimised mode (user code on
the replica's main event loop, buffered access logs). Both are read when Ray and Serve are
first imported, so they are set here, before any benchmark imports them; an explicit value in
the environment wins."""

import os

os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
