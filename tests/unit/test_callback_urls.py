"""Which callback URLs the platform calls (domain/callback_urls.py): every kind of refused
address (IPv4, IPv6, IPv4 inside IPv6, localhost), URLs that cannot be called at all, public
ones, and the networks an operator allows."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from domain.callback_urls import (
    CallbackUrlRefused,
    address_kind,
    address_refusal,
    check_callback_url,
    named_addresses,
    parse_callback_url,
    parse_networks,
)

REFUSED = [
    ("http://127.0.0.1:8265/api", "127.0.0.1 is a loopback address"),
    ("http://127.5.6.7/", "127.5.6.7 is a loopback address"),
    ("http://10.1.2.3/cb", "10.1.2.3 is a private address"),
    ("http://172.16.0.1/cb", "172.16.0.1 is a private address"),
    ("http://172.31.255.254/cb", "172.31.255.254 is a private address"),
    ("http://192.168.1.10/cb", "192.168.1.10 is a private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://0.0.0.0:8000/", "0.0.0.0 is an unspecified address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://255.255.255.255/", "255.255.255.255 is a reserved address"),
    ("http://100.64.0.1/", "100.64.0.1 is a non-public address"),
    ("http://[::1]:6379/", "::1 is a loopback address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe is a link-local address"),
    ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1 is a private address"),  # NAT64 of 10.0.0.1
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[fc00::1]/", "fc00::1 is a private address"),
    ("http://[fd12:3456::1]/", "fd12:3456::1 is a private address"),
    ("http://[fec0::1]/", "fec0::1 is a private address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("https://localhost/cb", "localhost stands for 127.0.0.1, a loopback address"),
    ("http://LocalHost.:9/", "localhost stands for 127.0.0.1, a loopback address"),
    ("http://api.localhost/", "api.localhost stands for 127.0.0.1, a loopback address"),
    # what the C library (and browsers) read as 127.0.0.1
    ("http://127.1/", "127.0.0.1 is a loopback address"),
    ("http://0x7f.1/", "127.0.0.1 is a loopback address"),
    ("http://2130706433/", "127.0.0.1 is a loopback address"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_internal_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(CallbackUrlRefused) as refused:
        check_callback_url(url)
    assert str(refused.value) == why


UNCALLABLE = [
    ("http://a.com:abc/", "has no valid port"),
    ("http://a.com:0/", "has no valid port"),
    ("http://a.com:65536/", "has no valid port"),
    ("http://xn--/", "has an invalid host name"),
    ("http://xn--abc-/", "has an invalid host name"),  # punycode of plain ASCII
    ("http://a..b/", "has an invalid host name"),
    ("http://-a.com/", "has an invalid host name"),
    ("http://a_b!.com/", "has an invalid host name"),
    ("http://1.2.3.4.5/", "has an invalid IPv4 address"),
    ("http://[::1/", "is not a valid URL"),
    ("http://[fe80::1%25eth0]/", "must not name an IPv6 zone"),
    ("http://exa mple.com/", "must not contain spaces or control characters"),
    ("http://example.com/\x00", "must not contain spaces or control characters"),
    ("ftp://example.com/", "must be an absolute http(s) URL"),
    ("http:///path", "must be an absolute http(s) URL"),
    ("/relative", "must be an absolute http(s) URL"),
    ("http://" + "a" * 64 + ".com/", "has an invalid host name"),
    ("http://" + ".".join(["a" * 60] * 5) + "/", "has a host name longer than 253"),
]


@pytest.mark.parametrize(("url", "why"), UNCALLABLE)
def test_urls_that_cannot_be_called_are_refused(url: str, why: str) -> None:
    with pytest.raises(CallbackUrlRefused) as refused:
        parse_callback_url(url)
    assert str(refused.value).startswith(why)


ALLOWED = [
    ("https://dist.example/cb?x=1", "dist.example", 443, None),
    ("http://Dist.Example.:8080/cb", "dist.example", 8080, None),
    ("http://8.8.8.8/cb", "8.8.8.8", 80, "8.8.8.8"),
    ("http://[2606:4700::1111]:8443/", "2606:4700::1111", 8443, "2606:4700::1111"),
    ("http://[::ffff:8.8.8.8]/", "::ffff:808:808", 80, "::ffff:808:808"),
    ("http://[64:ff9b::808:808]/", "64:ff9b::808:808", 80, "64:ff9b::808:808"),  # NAT64
    ("http://bücher.example/", "xn--bcher-kva.example", 80, None),
    ("http://xn--bcher-kva.example/", "xn--bcher-kva.example", 80, None),
    ("http://my_host.example/", "my_host.example", 80, None),
    # a host name is resolved, and its addresses checked, when the courier connects
    ("http://internal.corp.example/", "internal.corp.example", 80, None),
]


@pytest.mark.parametrize(("url", "host", "port", "address"), ALLOWED)
def test_public_addresses_and_host_names_are_allowed(
    url: str, host: str, port: int, address: str | None
) -> None:
    target = check_callback_url(url)
    assert (target.host, target.port) == (host, port)
    assert target.address == (None if address is None else ip_address(address))


def test_allowed_networks_let_on_premises_receivers_in() -> None:
    allowed = ["127.0.0.0/8", "10.20.0.0/16", "fd00::/8"]
    assert check_callback_url("http://127.0.0.1:9000/cb", allowed).port == 9000
    assert check_callback_url("http://10.20.3.4/cb", allowed).host == "10.20.3.4"
    assert check_callback_url("http://[fd00::5]/cb", allowed).host == "fd00::5"
    # the IPv4 inside an IPv4-mapped address is what the connection reaches
    assert check_callback_url("http://[::ffff:127.0.0.1]/", allowed).port == 80
    # only those networks
    for url in ("http://10.21.0.1/", "http://192.168.0.1/", "http://[::1]/"):
        with pytest.raises(CallbackUrlRefused):
            check_callback_url(url, allowed)
    # localhost stands for 127.0.0.1 and ::1: both must be allowed
    with pytest.raises(CallbackUrlRefused, match="localhost stands for ::1"):
        check_callback_url("http://localhost/", allowed)
    assert check_callback_url("http://localhost/", [*allowed, "::1/128"]).host == "localhost"
    # a bare address is one host
    assert check_callback_url("http://169.254.169.254/", ["169.254.169.254"]).port == 80
    with pytest.raises(CallbackUrlRefused):
        check_callback_url("http://169.254.169.253/", ["169.254.169.254"])


def test_networks_are_checked_when_read() -> None:
    assert [str(n) for n in parse_networks(("10.0.0.1/8", " fd00::/8 "))] == [
        "10.0.0.0/8",
        "fd00::/8",
    ]
    with pytest.raises(ValueError, match="not a network: 'nope'"):
        parse_networks(("nope",))
    with pytest.raises(ValueError, match="not a network"):
        parse_networks(("10.0.0.0/33",))


def test_addresses_are_classified_one_by_one() -> None:
    assert address_kind(ip_address("93.184.216.34")) is None
    assert address_kind(ip_address("2002:a00:1::")) == "private"  # 6to4 of 10.0.0.1
    assert address_kind(ip_address("2002:808:808::")) is None  # 6to4 of 8.8.8.8
    assert address_refusal(ip_address("fe80::1%eth0")) == "a link-local address"
    assert address_refusal(ip_address("10.0.0.1"), parse_networks(("10.0.0.0/8",))) is None


def test_addresses_a_host_names_without_dns() -> None:
    assert named_addresses("127.0.0.1") == (ip_address("127.0.0.1"),)
    assert named_addresses("[::1]") == (ip_address("::1"),)
    assert named_addresses("LOCALHOST.") == (ip_address("127.0.0.1"), ip_address("::1"))
    assert named_addresses("dist.example") == ()
