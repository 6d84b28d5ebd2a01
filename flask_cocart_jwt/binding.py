"""Sender-constrained tokens: what DPoP (RFC 9449) asks of each request.

The proofs themselves are checked by :mod:`flask_cocart_jwt.dpop`; this
module decides when a request needs one and what it binds:

* **token routes** (login, refresh, ``issue_tokens`` in a request):
  :func:`token_endpoint_jkt` checks the request's proof, if any, and returns
  its key's thumbprint, which binds the new session (or is checked against
  the refreshed session's key). With ``COCART_JWT_DPOP = "required"`` a
  request without a proof is refused.
* **protected views and the Bearer routes**: an ``Authorization: DPoP
  <access token>`` header needs a proof by the token's key
  (:func:`bound_claims`); a token bound to a key (``cnf.jkt``) is refused in
  any other form, and with ``"required"`` so is an unbound one
  (:func:`check_unbound`).

With ``COCART_JWT_DPOP = "off"`` none of this runs, except that a bound
token, issued before DPoP was switched off, is refused.

.. versionadded:: 0.2
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

from flask import request

from .config import Settings
from .dpop import ProofChecker
from .exceptions import InvalidDPoPProof, InvalidToken
from .rotation import KeyCheck
from .service import Service

#: The authentication scheme of a bound access token (RFC 9449 section 7.1).
DPOP_SCHEME = "dpop"


def dpop_access_token(environ: Mapping[str, Any], settings: Settings) -> str | None:
    """The access token of an ``Authorization: DPoP <token>`` header, or ``None``."""
    value = environ.get(settings.header_environ_key)
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != DPOP_SCHEME:
        return None
    token = token.strip()
    return token or None


def _proof(checker: ProofChecker, access_token: str | None) -> str:
    """The key thumbprint of the current request's valid proof."""
    return checker.check(
        request.environ.get("HTTP_DPOP"),
        method=request.method,
        url=request.base_url,
        now=time.time(),
        access_token=access_token,
    ).jkt


def token_endpoint_jkt(service: Service) -> str | None:
    """The thumbprint of the proof sent to a token route, or ``None`` without one.

    :raises InvalidDPoPProof: an invalid proof; or none with ``"required"``.
    :raises UseDPoPNonce: ``COCART_JWT_DPOP_NONCE`` and no current nonce.
    """
    checker = service.dpop
    if checker is None:
        return None
    if "HTTP_DPOP" not in request.environ:
        if checker.settings.required:
            raise InvalidDPoPProof(
                "This API needs a DPoP proof with every token request.",
                algs=checker.settings.algs,
            )
        return None
    return _proof(checker, None)


def revocation_key_check(service: Service) -> KeyCheck | None:
    """What a ``/revoke`` that names a token in its body must prove.

    A token of a session bound to a key revokes it only with a valid proof
    by that key (a thief cannot log the owner out either); the proof is
    checked here, once. ``None`` when DPoP is ``"off"``.

    :raises InvalidDPoPProof: see :func:`token_endpoint_jkt`; the returned
        check raises it for a bound session and no proof, or another key.
    """
    checker = service.dpop
    if checker is None:
        return None
    jkt = token_endpoint_jkt(service)

    def check(bound: str | None) -> None:
        if bound is not None and (
            jkt is None or not hmac.compare_digest(jkt.encode(), bound.encode())
        ):
            raise InvalidDPoPProof(algs=checker.settings.algs)

    return check


def bound_claims(service: Service, token: str) -> dict[str, Any]:
    """The claims of a bound access token sent as ``Authorization: DPoP``,
    once the request's proof is checked against it.

    :raises InvalidToken: the token is not valid, or not bound to a key.
    :raises InvalidDPoPProof: no valid proof by the token's key, for this
        request and this token (``ath``).
    """
    checker = service.dpop
    assert checker is not None
    claims = service.verify(token)
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if type(cnf) is dict else None
    if type(jkt) is not str:
        raise InvalidToken("This access token is not bound to a key: send it as Bearer.")
    if not hmac.compare_digest(_proof(checker, token).encode(), jkt.encode()):
        raise InvalidDPoPProof(algs=checker.settings.algs)
    return claims


def check_unbound(claims: Mapping[str, Any], checker: ProofChecker | None) -> None:
    """Refuse a token sent without DPoP that needs it.

    :raises InvalidToken: the token is bound to a key (``cnf``), or
        ``COCART_JWT_DPOP`` is ``"required"``.
    """
    if "cnf" in claims or (checker is not None and checker.settings.required):
        raise InvalidToken(
            "This access token must be sent as 'Authorization: DPoP' with a DPoP proof."
        )
