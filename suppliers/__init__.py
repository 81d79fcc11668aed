"""Supplier gateways: one protocol (`suppliers.gateway`), several adapters (`suppliers.sandbox`).

Build one with `suppliers.registry.build_gateway(kind, config)`.
"""
