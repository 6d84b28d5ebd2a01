"""Client addresses as rate-limit keys: IPv6 clients grouped by network prefix.

An IPv6 client is usually given a whole ``/64`` (or more) and can pick any
address inside it, so counting each address apart lets one client rotate
through fresh keys. The per-IP limits therefore count an IPv6 client by its
network, ``COCART_JWT_RATELIMIT_IPV6_PREFIX`` bits long (64 by default).
IPv4 addresses are counted as they are, and an IPv4-mapped IPv6 address
(``::ffff:192.0.2.1``, what a dual-stack socket reports for an IPv4 client)
counts as its IPv4 address.

.. versionadded:: 0.2
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network, ip_address

#: The key of a request without a client address.
UNKNOWN = "unknown"


def client_key(address: str | None, ipv6_prefix: int) -> str:
    """The rate-limit key of the client at ``address`` (``request.remote_addr``).

    :param address: the client's address; ``None`` or ``""`` counts as
        ``"unknown"``, and anything that is not an IP address (a Unix
        socket's name) is used as it is.
    :param ipv6_prefix: the length of the IPv6 network a client is counted
        by, from 1 to 128.
    :returns: an IPv4 address as given, or an IPv6 network such as
        ``"2001:db8:1:2::/64"``.
    """
    if not address:
        return UNKNOWN
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if not isinstance(ip, IPv6Address):
        return address
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    host_bits = 128 - ipv6_prefix
    # The integer drops a scope id (fe80::1%eth0): one client, one key.
    return str(IPv6Network((int(ip) >> host_bits << host_bits, ipv6_prefix)))
