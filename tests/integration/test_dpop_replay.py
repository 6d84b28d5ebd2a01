"""DPoP over real HTTP: a proof is accepted once across every worker and host.

Two gunicorn servers, two workers each, one PostgreSQL and one Redis (the
rate-limit storage holds the replay cache). One proof, sent to every worker
of both servers at once and then again one by one, is accepted exactly once;
a bound token copied to a client without the key is refused everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

import pytest

from tests.dpop_support import ProofKey
from tests.integration import servers as srv

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]


def test_one_proof_is_accepted_once_across_workers_and_servers(
    postgresql_url: str, redis_url: str, start_servers: Callable[..., list[srv.Server]]
) -> None:
    a, b = start_servers(postgresql_url, redis_url, COCART_JWT_DPOP="optional")
    key = ProofKey()
    url = f"http://127.0.0.1:{a.port}/auth/login"
    login = srv.call(
        a.port, "POST", "/auth/login", body=srv.DEMO, extra_headers={"DPoP": key.proof("POST", url)}
    )
    assert login.status == 200, login.describe()
    assert login.body["token_type"] == "DPoP"
    token = login.body["access_token"]
    bound = {"Authorization": f"DPoP {token}"}

    # One proof per server (htu names the host and port it was made for).
    for server in (a, b):
        proof = key.proof("GET", f"http://127.0.0.1:{server.port}/cart", access_token=token)
        headers = {**bound, "DPoP": proof}
        replies = srv.concurrently(
            [partial(srv.call, server.port, "GET", "/cart", extra_headers=headers)] * 8
        )
        assert Counter(r.status for r in replies) == {200: 1, 401: 7}, [
            r.describe() for r in replies
        ]
        assert {r.code for r in replies if r.status == 401} == {"invalid_dpop_proof"}
        # Then one by one, until every worker of the server has refused it.
        seen = {r.pid for r in replies}
        for _ in range(40):
            if len(seen) >= 2:
                break
            again = srv.call(server.port, "GET", "/cart", extra_headers=headers)
            assert again.status == 401, again.describe()
            assert again.code == "invalid_dpop_proof"
            assert again.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
            seen.add(again.pid)
        assert len(seen) >= 2, "the requests did not reach both workers"
    assert any("dpop_jti" in k for k in srv.redis_keys(redis_url))

    # The token copied out without the key: as Bearer, or as DPoP with no
    # proof or a proof of another key, refused by every worker.
    thief = ProofKey()
    for server in (a, b):
        target = f"http://127.0.0.1:{server.port}/cart"
        attempts = [
            srv.call(server.port, "GET", "/cart", token=token),
            srv.call(server.port, "GET", "/cart", extra_headers=bound),
            srv.call(
                server.port,
                "GET",
                "/cart",
                extra_headers={**bound, "DPoP": thief.proof("GET", target, access_token=token)},
            ),
        ]
        assert [(r.status, r.code) for r in attempts] == [
            (401, "invalid_token"),
            (401, "invalid_dpop_proof"),
            (401, "invalid_dpop_proof"),
        ]
