"""Per-IP limits behind a proxy: an IPv6 client cannot rotate out of them.

One gunicorn server (two workers, counting in Redis) sits behind Werkzeug's
``ProxyFix`` trusting one proxy, so the client address comes from the last
``X-Forwarded-For`` entry, as it would behind nginx. A client that sends each
login from a fresh address inside its ``/64`` is still one client: the
login limit (10 per minute) stops it at the eleventh.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.integration import servers as srv

NETWORK = "2001:db8:42:7"


def test_ipv6_clients_rotating_inside_a_64_are_throttled(
    postgresql_url: str, redis_url: str, start_servers: Callable[..., list[srv.Server]]
) -> None:
    (server,) = start_servers(postgresql_url, redis_url, names=("a",), TEST_PROXY_FIX="1")

    def login(forwarded_for: str) -> srv.Reply:
        return srv.call(
            server.port,
            "POST",
            "/auth/login",
            body=srv.DEMO,
            extra_headers={"X-Forwarded-For": forwarded_for},
        )

    rotating = [
        f"{NETWORK}:{i:x}:{0xFFFF - i:x}:{i * 7919 % 0xFFFF:x}:{i + 1:x}" for i in range(30)
    ]
    assert len(set(rotating)) == 30
    replies = []
    for address in rotating:
        replies.append(login(address))
        if replies[-1].status != 200:
            break
    # The eleventh is refused. On a loaded machine a Redis call can outlast the
    # storage timeout (0.5 s), and that request counts in its worker's memory
    # ("fallback"), so the refusal may come a few logins later; without the /64
    # grouping it would never come: each address is sent once.
    assert [r.status for r in replies[:10]] == [200] * 10, [r.describe() for r in replies]
    blocked = replies[-1]
    assert (blocked.status, blocked.code) == (429, "rate_limited"), blocked.describe()
    assert int(blocked.headers["retry-after"]) >= 1
    # Spoofed entries before the proxy's own change nothing: the last one counts.
    spoofed = login(f"2001:db8:99::1, 203.0.113.5, {NETWORK}::abcd")
    assert (spoofed.status, spoofed.code) == (429, "rate_limited")
    # The next /64, an IPv4 client and an IPv4-mapped one are other clients.
    assert login("2001:db8:42:8::1").status == 200
    assert login("198.51.100.7").status == 200
    assert login("::ffff:198.51.100.8").status == 200
    # One counter in the shared storage for the whole network, none per address.
    keys = [key for key in srv.redis_keys(redis_url) if "/login_per_ip/" in key]
    assert any(f"/login_per_ip/{NETWORK}::/64/" in key for key in keys), keys
    assert not any(address in key for key in keys for address in rotating), keys
