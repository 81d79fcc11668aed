"""The pretix box office as a supplier (docs/pretix.md): one pretix event per supplier."""

from suppliers.pretix.config import PretixConfig, PretixSettings, SealedPretixConfig
from suppliers.pretix.gateway import PretixGateway

__all__ = ["PretixConfig", "PretixGateway", "PretixSettings", "SealedPretixConfig"]
