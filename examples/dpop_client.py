"""A minimal DPoP client in Python: ``requests`` for HTTP, ``cryptography`` for the key.

Every request carries a DPoP proof (RFC 9449) signed by a P-256 key that
never leaves the process; the API binds the session to it, so the tokens
alone are worthless to anyone who copies them. Against an app with
``COCART_JWT_DPOP`` on::

    client = DPoPClient("http://127.0.0.1:5000")
    client.login("alice", "correct horse battery staple")
    print(client.request("GET", "/hello").json())

The proof is a compact JWS written out here (two JSON objects and an ES256
signature), so that nothing but ``cryptography`` is needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DPoPClient:
    """Log in, refresh and call an API with DPoP-bound tokens.

    :param base_url: the API's origin, e.g. ``https://api.shop.example``.
    :param prefix: its ``COCART_JWT_URL_PREFIX``.
    """

    def __init__(self, base_url: str, *, prefix: str = "/auth") -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix
        self.http = requests.Session()
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        self.nonce: str | None = None  # the server's DPoP-Nonce, if it sends one
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.token_type = "Bearer"

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A proof for one request (``url`` without its query and fragment)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url.split("?")[0].split("#")[0],
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode("ascii")).digest())
        if self.nonce is not None:
            claims["nonce"] = self.nonce
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        der = self.key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JWS wants r || s, 32 bytes each
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request with a fresh proof (and the access token, if logged in).

        A ``401 use_dpop_nonce`` is answered once more with the server's nonce.
        """
        url = self.base_url + path
        response = None
        for _ in range(2):
            headers = dict(kwargs.pop("headers", None) or {})
            bound = self.access_token if self.token_type == "DPoP" else None
            headers["DPoP"] = self.proof(method, url, bound)
            if self.access_token is not None:
                headers["Authorization"] = f"{self.token_type} {self.access_token}"
            response = self.http.request(method, url, headers=headers, timeout=30, **kwargs)
            nonce = response.headers.get("DPoP-Nonce")
            if nonce:
                self.nonce = nonce
            challenge = response.headers.get("WWW-Authenticate", "")
            if not (response.status_code == 401 and nonce and "use_dpop_nonce" in challenge):
                break
            kwargs["headers"] = headers
        assert response is not None
        return response

    def _token_request(self, path: str, body: dict[str, str]) -> None:
        access, self.access_token = self.access_token, None  # token routes take none
        try:
            response = self.request("POST", self.prefix + path, json=body)
        except BaseException:
            self.access_token = access
            raise
        response.raise_for_status()
        tokens = response.json()
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        self.token_type = tokens["token_type"]  # "DPoP": bound to this client's key

    def login(self, username: str, password: str) -> None:
        """``POST /login`` with a proof: the session is bound to the key."""
        self._token_request("/login", {"username": username, "password": password})

    def refresh(self) -> None:
        """``POST /refresh-token``: a bound session rotates only with the key's proof."""
        assert self.refresh_token is not None
        self._token_request("/refresh-token", {"refresh_token": self.refresh_token})
