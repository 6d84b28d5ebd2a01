"""Access tokens: pure encoding and strict, fast decoding. No ``current_app``.

Decoding is written out step by step on top of PyJWT's algorithm objects
instead of going through ``jwt.decode``, so that every rule of the contract is
checked exactly once, in the cheapest order, and nothing is decided by the
token itself:

1. size cap and character set (``[A-Za-z0-9_.-]``), exactly three segments;
2. canonical base64url in every segment (no padding, no stray bits);
3. header: a JSON object of UTF-8 with no duplicate names (like the claims,
   nested at most :data:`MAX_JSON_DEPTH` levels), ``kid`` selecting a
   configured key, ``alg`` equal to that key's one algorithm, ``typ`` equal to
   ``at+jwt``, no ``crit``; ``jwk``/``jku``/``x5u``/``x5c`` are never used;
4. the signature, with the configured key only;
5. claims: required names and types, ``exp``/``nbf``/``iat`` with leeway,
   exact ``iss`` and ``aud``.

Every failure is an :class:`~flask_cocart_jwt.exceptions.InvalidToken` (or
:class:`~flask_cocart_jwt.exceptions.TokenExpired`); no PyJWT, JSON, Unicode
or recursion error escapes from here.
"""

from __future__ import annotations

import binascii
import json
import json.scanner
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from .config import Settings
from .exceptions import InvalidToken, TokenExpired
from .keys import ACCESS_TOKEN_TYPE, VerificationKey, b64url, encoded_header

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "RESERVED_CLAIMS",
    "decode_access_token",
    "decode_segment",
    "encode_access_token",
    "parse_object",
]

#: Claims the extension sets itself; additional claims cannot override them.
RESERVED_CLAIMS = frozenset(
    {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "fresh", "cnf"}
)

_SEGMENT = r"[A-Za-z0-9_-]+"
_TOKEN_SHAPE = re.compile(rf"{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}")
_MAX_IDENTITY_CHARS = 255
_TEXT_CLAIMS = ("sub", "jti", "sid")
#: The deepest nesting of arrays and objects accepted in a header or claims.
MAX_JSON_DEPTH = 32


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


_decoder = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_reject_constant)
#: The decoder's (C) scanner, called directly: one value from the first character.
#: (typeshed types its argument as a scanner; it takes the decoder it serves.)
_scan_value = json.scanner.make_scanner(_decoder)  # type: ignore[arg-type]


#: The characters that may end a segment of length 2 or 3 (mod 4): those
#: whose unused low bits are zero, so that each byte string has one encoding.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048"), 0: None}


def _b64decode(segment: str) -> bytes:
    """Decode one canonical base64url segment, or raise ``ValueError``.

    The caller has checked the alphabet (``[A-Za-z0-9_-]``, no padding).
    """
    rest = len(segment) % 4
    if rest == 1:
        raise ValueError("impossible base64 length")
    last = _CANONICAL_LAST[rest]
    if last is not None and segment[-1] not in last:
        raise ValueError("non-canonical base64: unused bits set")
    standard = segment.replace("-", "+").replace("_", "/")
    return binascii.a2b_base64(standard + "==="[: (4 - rest) % 4])


def _check_depth(text: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH`, or raise ``ValueError``.

    Deep nesting would otherwise be limited only by the interpreter's
    recursion limit, which differs between Python versions and call stacks.
    Called only for a text with more brackets than that depth.
    """
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError("JSON nested too deeply")
        elif char in "]}":
            depth -= 1


def _json_object(data: bytes) -> dict[str, Any]:
    """Parse a strict JSON object from UTF-8 bytes, or raise ``ValueError``."""
    text = data.decode("utf-8")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_depth(text)
    # The scanner alone parses a value that fills the text (what the extension
    # writes); surrounding whitespace or an error goes to the whole decoder.
    try:
        obj, end = _scan_value(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        obj = _decoder.decode(text)
    if type(obj) is not dict:
        raise ValueError("not a JSON object")
    return obj


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value
    raise InvalidToken


def _key_of(header: Mapping[str, Any], settings: Settings) -> VerificationKey:
    """The configured key a parsed header names, if the header is acceptable."""
    kid = header.get("kid")
    key = settings.keyring.verification_keys.get(kid) if type(kid) is str else None
    if (
        key is None
        or header.get("alg") != key.algorithm
        or header.get("typ") != ACCESS_TOKEN_TYPE
        or "crit" in header
    ):
        raise InvalidToken
    return key


def decode_access_token(token: str, settings: Settings, now: float) -> dict[str, Any]:
    """Verify an access token and return its claims.

    :param token: the compact JWS as sent by the client.
    :param settings: the app's settings (keys, issuer, audience, leeway).
    :param now: the current Unix time.
    :raises InvalidToken: for anything but a valid, current access token.
    :raises TokenExpired: for a valid token past its ``exp``.
    """
    if len(token) > settings.max_token_bytes or not _TOKEN_SHAPE.fullmatch(token):
        raise InvalidToken
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        key = settings.keyring.known_headers.get(header_b64)
        if key is None:
            key = _key_of(_json_object(_b64decode(header_b64)), settings)
        signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
        valid = key.verify_encoded(signing_input, signature_b64)
        if valid is None:
            valid = key.verify(signing_input, _b64decode(signature_b64))
        if not valid:
            raise InvalidToken
        claims = _json_object(_b64decode(payload_b64))
    except (ValueError, binascii.Error, RecursionError, TypeError) as exc:
        raise InvalidToken from exc

    for name in _TEXT_CLAIMS:  # non-empty strings
        value = claims.get(name)
        if type(value) is not str or not 0 < len(value) <= _MAX_IDENTITY_CHARS:
            raise InvalidToken
    exp = _numeric_date(claims, "exp")
    iat = _numeric_date(claims, "iat")
    nbf = _numeric_date(claims, "nbf") if "nbf" in claims else iat
    leeway = settings.leeway
    if iat > now + leeway or nbf > now + leeway:
        raise InvalidToken
    if "fresh" in claims and type(claims["fresh"]) is not bool:
        raise InvalidToken

    if settings.issuer is not None:
        if claims.get("iss") != settings.issuer:
            raise InvalidToken
    elif "iss" in claims:
        raise InvalidToken
    aud = claims.get("aud")
    if settings.audience is not None:
        audiences = [aud] if type(aud) is str else aud
        if type(audiences) is not list or not any(
            type(a) is str and a in settings.audience for a in audiences
        ):
            raise InvalidToken
    elif "aud" in claims:
        raise InvalidToken
    # Last, so that "token_expired" means "valid but for its age": refresh it.
    if exp <= now - leeway:
        raise TokenExpired(expired_at=exp)
    return claims


def encode_access_token(
    settings: Settings,
    *,
    identity: str,
    session_id: str,
    fresh: bool,
    now: int,
    additional_claims: Mapping[str, Any] | None = None,
    not_after: int | None = None,
    jkt: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Sign a new access token and return it with its claims.

    :param identity: the ``sub`` claim.
    :param session_id: the ``sid`` claim, the session (refresh token family).
    :param fresh: whether the token comes straight from a login.
    :param now: the current Unix time, as ``iat`` and ``nbf``.
    :param additional_claims: extra claims; reserved claims are not overridden.
    :param not_after: the latest ``exp`` allowed (the session's absolute expiry).
    :param jkt: bind the token to this DPoP key thumbprint: ``"cnf": {"jkt": ...}``.
    """
    claims: dict[str, Any] = {
        k: v for k, v in (additional_claims or {}).items() if k not in RESERVED_CLAIMS
    }
    if settings.issuer is not None:
        claims["iss"] = settings.issuer
    if settings.audience is not None:
        claims["aud"] = (
            settings.audience[0] if len(settings.audience) == 1 else list(settings.audience)
        )
    claims.update(
        sub=identity,
        iat=now,
        nbf=now,
        exp=now + settings.access_token_expires
        if not_after is None
        else min(now + settings.access_token_expires, not_after),
        jti=secrets.token_urlsafe(16),
        sid=session_id,
        fresh=fresh,
    )
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    keyring = settings.keyring
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{encoded_header(keyring.algorithm, keyring.signing_kid)}.{payload}"
    signature = keyring.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}", claims


#: The strict parsers of this module, for the other JWS the extension reads
#: (DPoP proofs, :mod:`flask_cocart_jwt.dpop`): one canonical base64url
#: segment, and a JSON object as strict as an access token's.
decode_segment = _b64decode
parse_object = _json_object
