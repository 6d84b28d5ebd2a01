"""Client addresses as rate-limit keys: IPv6 grouped by prefix, IPv4 unchanged."""

from __future__ import annotations

import pytest

from flask_cocart_jwt.addresses import client_key


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("2001:db8:1:2::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),
        ("2001:DB8:0001:0002:0:0:0:1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2::1", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2ff::1", 56, "2001:db8:1:200::/56"),
        ("2001:db8::1", 128, "2001:db8::1/128"),
        ("8001::1", 1, "8000::/1"),
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("::1", 64, "::/64"),
        # IPv4 and IPv4-mapped IPv6: the IPv4 address, whatever the prefix
        ("198.51.100.7", 64, "198.51.100.7"),
        ("::ffff:198.51.100.7", 64, "198.51.100.7"),
        ("::FFFF:c633:6407", 8, "198.51.100.7"),
        # not an address (a Unix socket, a misconfigured proxy): kept as it is
        ("unix-socket", 64, "unix-socket"),
        ("", 64, "unknown"),
        (None, 64, "unknown"),
    ],
)
def test_client_key(address: str | None, prefix: int, key: str) -> None:
    assert client_key(address, prefix) == key
