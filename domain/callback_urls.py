"""Which callback URLs the platform will POST to.

A `callback_url` is an absolute `http(s)` URL whose host the platform can name: a valid port, a
host name of valid labels (IDNA), or an IP literal. The platform never connects to an address
of its own network: loopback, link-local, private, multicast, reserved and unspecified
addresses (IPv4 and IPv6, the IPv4 inside an IPv4-mapped or NAT64 IPv6 address included) are
refused, unless they fall in a network the operator allows for on-premises receivers
(`SHOWDIST_CALLBACK_ALLOWED_NETWORKS`). `localhost` and its sub-domains stand for 127.0.0.1 and
::1 without asking DNS. The API checks what a URL says when an order is created; the courier
checks every address a host name resolves to before it connects (`actors/callbacks.py`).

Pure: nothing here resolves a name or opens a socket.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

LOCALHOST_ADDRESSES: tuple[Address, ...] = (IPv4Address("127.0.0.1"), IPv6Address("::1"))
_NAT64 = IPv6Network("64:ff9b::/96")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


class CallbackUrlRefused(ValueError):
    """A callback URL the platform will not call, with the reason in words."""


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """A callback URL, read: `host` is lower-case ASCII without a trailing dot (an IPv6
    literal without its brackets), `port` the explicit or the scheme's default port."""

    scheme: str
    host: str
    port: int
    address: Address | None  # the host, when it is an IP literal

    @property
    def fixed_addresses(self) -> tuple[Address, ...]:
        """The addresses this URL names without DNS (see `named_addresses`)."""
        return (self.address,) if self.address is not None else named_addresses(self.host)


def named_addresses(host: str) -> tuple[Address, ...]:
    """The addresses a host names without DNS: an IP literal's own (with or without its
    brackets), localhost's (for `localhost` and its sub-domains); empty for a host name that
    must be resolved."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        return (ipaddress.ip_address(name),)
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost"):
        return LOCALHOST_ADDRESSES
    return ()


def parse_callback_url(url: str) -> CallbackTarget:
    """Read a callback URL, or raise `CallbackUrlRefused` saying what is wrong with it."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise CallbackUrlRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket
        raise CallbackUrlRefused("is not a valid URL") from exc
    try:
        port = parts.port
    except ValueError as exc:
        raise CallbackUrlRefused("has no valid port (a number from 1 to 65535)") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise CallbackUrlRefused("must be an absolute http(s) URL")
    if port == 0:
        raise CallbackUrlRefused("has no valid port (a number from 1 to 65535)")
    host, address = _host(parts.hostname, bracketed="[" in parts.netloc)
    return CallbackTarget(scheme, host, port or (443 if scheme == "https" else 80), address)


def _host(raw: str, *, bracketed: bool) -> tuple[str, Address | None]:
    if bracketed:
        try:
            v6 = IPv6Address(raw)
        except ValueError as exc:
            raise CallbackUrlRefused(f"has an invalid IPv6 address [{raw}]") from exc
        if v6.scope_id:
            raise CallbackUrlRefused("must not name an IPv6 zone")
        return str(v6), v6
    name = raw[:-1] if raw.endswith(".") else raw
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        # As browsers and the C library read it: 127.1, 0x7f.1 and 2130706433 are 127.0.0.1.
        try:
            v4 = IPv4Address(socket.inet_aton(name))
        except OSError as exc:
            raise CallbackUrlRefused(f"has an invalid IPv4 address {raw}") from exc
        return str(v4), v4
    ascii_labels = [_label(label, raw) for label in labels]
    host = ".".join(ascii_labels)
    if len(host) > 253:
        raise CallbackUrlRefused("has a host name longer than 253 characters")
    return host, None


def _label(label: str, raw: str) -> str:
    invalid = CallbackUrlRefused(f"has an invalid host name {raw!r}")
    if not label.isascii():
        try:
            label = label.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise invalid from exc
    if not _LABEL.match(label):
        raise invalid
    if label.startswith("xn--"):
        try:
            decoded = label[4:].encode("ascii").decode("punycode")
        except UnicodeError as exc:
            raise invalid from exc
        if not decoded or decoded.isascii():
            raise invalid
    return label


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def address_kind(address: Address) -> str | None:
    """Why the platform will not connect to `address` ("loopback", "link-local", "private",
    "multicast", "reserved", "unspecified", "non-public"), or None for a public address."""
    if isinstance(address, IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            kind = address_kind(inner)
            if kind is not None or address.ipv4_mapped is not None or address in _NAT64:
                return kind
        if address.is_site_local:
            return "private"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def is_allowed(address: Address, networks: Sequence[Network]) -> bool:
    """Whether `address` is in one of `networks` (an IPv4-mapped address also by its IPv4)."""
    inner = address.ipv4_mapped if isinstance(address, IPv6Address) else None
    return any(
        candidate in net
        for candidate in (address, inner)
        if candidate is not None
        for net in networks
        if candidate.version == net.version
    )


def address_refusal(address: Address, networks: Sequence[Network] = ()) -> str | None:
    """Why `address` is refused ("a loopback address", ...), or None when the platform may
    connect to it."""
    if is_allowed(address, networks):
        return None
    kind = address_kind(address)
    if kind is None:
        return None
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"


@lru_cache(maxsize=64)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """The allowed networks from their CIDRs (`10.0.0.0/8`, `fd00::/8`; a bare address is
    one host); a malformed one raises ValueError naming it."""
    networks: list[Network] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r}") from exc
    return tuple(networks)


def check_callback_url(url: str, allowed: Iterable[str] = ()) -> CallbackTarget:
    """Read `url` and refuse it (`CallbackUrlRefused`) when it names a refused address
    outright (an IP literal, localhost); a host name is checked when it is resolved."""
    target = parse_callback_url(url)
    networks = parse_networks(tuple(allowed))
    for address in target.fixed_addresses:
        refusal = address_refusal(address, networks)
        if refusal is not None:
            named = (
                f"{address} is"
                if target.address is not None
                else f"{target.host} stands for {address},"
            )
            raise CallbackUrlRefused(f"{named} {refusal}")
    return target
