"""The sandbox supplier: a real HTTP supplier with fault injection, and its gateway.

- `suppliers.sandbox.server`: the server (run it with `python -m suppliers.sandbox`).
- `suppliers.sandbox.gateway`: `SandboxGateway`, the `SupplierGateway` adapter over HTTP.
- `suppliers.sandbox.process`: `SandboxProcess` (start and stop the server) and `SandboxAdmin`.

Nothing is imported here so that starting the server stays cheap.
"""
