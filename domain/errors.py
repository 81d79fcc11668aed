"""The base of every refusal the rules make, so the layers in between can tell a request the
rules refused (the HTTP layer maps each kind to a 4xx) from a failure to carry it out."""

from __future__ import annotations


class Refusal(Exception):
    """A request the platform's rules refuse; carrying it again changes nothing."""
