"""DPoP proofs (RFC 9449): the checks of section 4.3, the nonces of section 8.

A proof is the request's ``DPoP`` header: a compact JWS whose header carries
the client's public key (``jwk``) and whose claims name the request it was
made for. :meth:`ProofChecker.check` runs every check of RFC 9449 section
4.3, cheapest first, on PyJWT's algorithm objects and ``cryptography`` (no
cryptography is written here; the thumbprint is RFC 7638's SHA-256):

1. exactly one ``DPoP`` header, at most :data:`MAX_PROOF_CHARS` long, three
   canonical base64url segments (the strict parsers of
   :mod:`flask_cocart_jwt.tokens`: no duplicate names, bounded nesting);
2. header: ``typ`` ``dpop+jwt``, ``alg`` one of
   ``COCART_JWT_DPOP_ALGORITHMS`` (asymmetric only), no ``crit``, and a
   ``jwk`` that is a public key of the algorithm's type and curve with no
   private member (RSA keys of at least 2048 bits);
3. the signature, by that key;
4. claims: ``jti`` (a string), ``htm`` equal to the request's method,
   ``htu`` equal to the request's URL without query and fragment (both
   normalised per RFC 3986 section 6: case of scheme and host, default
   port, percent-encoding, dot segments), ``iat`` within
   ``COCART_JWT_DPOP_MAX_AGE`` plus ``COCART_JWT_LEEWAY`` of now, either
   side;
5. ``ath``, the base64url SHA-256 of the access token, when one is presented;
6. ``nonce`` with ``COCART_JWT_DPOP_NONCE``: a nonce of this or the previous
   time window (an HMAC of the window's number with a key derived from the
   signing secret, so every worker and host knows it without storing it);
   otherwise :class:`~flask_cocart_jwt.exceptions.UseDPoPNonce`;
7. the ``jti`` not seen before within the window: the replay cache
   (:mod:`flask_cocart_jwt.replay`) lives in the rate-limit storage, shared
   by every worker on Redis.

Every refusal is :class:`~flask_cocart_jwt.exceptions.InvalidDPoPProof`: no
PyJWT, JSON, Unicode or ``cryptography`` error escapes from here.

The URL is the one the app sees (``request.base_url``): behind a proxy,
``ProxyFix`` must set the scheme and host the client used, as for every URL
the app builds.

.. versionadded:: 0.2
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import PyJWTError

from .dpop_settings import DPoPSettings
from .exceptions import InvalidDPoPProof, UseDPoPNonce
from .keys import Keyring, b64url, thumbprint
from .replay import ReplayCache
from .tokens import decode_segment, parse_object

#: The ``typ`` of a DPoP proof (RFC 9449 section 4.2).
PROOF_TYPE = "dpop+jwt"
#: The longest ``DPoP`` header looked at: an RSA-4096 proof is about 2,100
#: characters.
MAX_PROOF_CHARS = 8192
#: The longest ``jti`` accepted (128 random bits are 22 to 36 characters).
MAX_JTI_CHARS = 256
#: The shortest RSA key accepted in a proof.
MIN_RSA_BITS = 2048
#: JWK members that hold private key material (RFC 7518 section 6).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: The key type (``kty``) and curves (``crv``) of each proof algorithm.
KEY_TYPES: Mapping[str, tuple[str, frozenset[str] | None]] = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}

_ALGORITHMS: dict[str, Algorithm] = get_default_algorithms()
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_NONCE_LABEL = "dpop-nonce"
#: What PyJWT and ``cryptography`` raise for a key they cannot load.
_KEY_ERRORS = (PyJWTError, ValueError, TypeError, KeyError, UnsupportedAlgorithm, OverflowError)


@dataclass(frozen=True, slots=True)
class Proof:
    """A DPoP proof that passed every check."""

    #: The RFC 7638 SHA-256 thumbprint of the proof's public key.
    jkt: str
    #: The proof's unique id.
    jti: str


def access_token_hash(token: str) -> str:
    """The ``ath`` of an access token: its base64url SHA-256 (RFC 9449 section 4.2)."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if len(output) > 0:
                output.pop()
        elif segment != ".":
            output.append(segment)
    ends_in_dir = path.endswith(("/.", "/.."))
    return "/" + "/".join(output) + ("/" if ends_in_dir and output else "")


def normalize_url(url: str) -> str | None:
    """``url`` normalised as RFC 3986 section 6.2.2 and 6.2.3 say, or ``None``.

    The scheme and host in lower case, no default port, an empty path as
    ``/``, percent-encodings of unreserved characters decoded and the others
    in upper case, dot segments removed. Anything but an ``http`` or
    ``https`` URL with a host, and any URL with user info, a query or a
    fragment, is ``None``.
    """
    if "?" in url or "#" in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _remove_dot_segments(_PERCENT.sub(_percent, parts.path or "/"))
    return f"{scheme}://{netloc}{path}"


def _refuse(settings: DPoPSettings) -> InvalidDPoPProof:
    return InvalidDPoPProof(algs=settings.algs)


class ProofChecker:
    """The DPoP checks of one app.

    :param settings: the app's DPoP settings.
    :param keyring: the app's keyring, whose derived keys make the nonces
        and the replay cache's keys.
    :param replay: the cache of ``jti`` values seen.
    """

    def __init__(self, settings: DPoPSettings, keyring: Keyring, replay: ReplayCache) -> None:
        self.settings = settings
        self.keyring = keyring
        self.replay = replay
        self._allowed = frozenset(settings.algorithms)

    # -- nonces (RFC 9449 section 8) -----------------------------------------

    def _nonce_of(self, window: int) -> str:
        return b64url(self.keyring.derive(_NONCE_LABEL, str(window).encode())[:18])

    def nonce(self, now: float) -> str:
        """The server's current nonce: the same in every worker and host."""
        return self._nonce_of(math.floor(now / self.settings.max_age))

    def _nonce_valid(self, nonce: object, now: float) -> bool:
        """A nonce of this window or the previous one (at least one window old)."""
        if type(nonce) is not str or len(nonce) != 24:
            return False
        window = math.floor(now / self.settings.max_age)
        return any(
            hmac.compare_digest(nonce.encode(), self._nonce_of(each).encode())
            for each in (window, window - 1)
        )

    # -- the checks of RFC 9449 section 4.3 ------------------------------------

    def check(
        self,
        header: str | None,
        *,
        method: str,
        url: str,
        now: float,
        access_token: str | None = None,
    ) -> Proof:
        """Check the ``DPoP`` header of a request and return what it proves.

        :param header: the value of the request's ``DPoP`` header (two
            headers arrive joined by a comma), or ``None``.
        :param method: the request's method.
        :param url: the request's URL without its query (``request.base_url``).
        :param now: the current Unix time.
        :param access_token: the access token presented with the proof, if
            any: the proof must carry its hash (``ath``).
        :raises InvalidDPoPProof: a missing, malformed, forged, stale or
            replayed proof.
        :raises UseDPoPNonce: a proof without the server's current nonce.
        :raises ServiceUnavailable: the replay cache's storage is down in
            ``"reject"`` mode.
        """
        settings = self.settings
        if not header or len(header) > MAX_PROOF_CHARS or not _SHAPE.fullmatch(header):
            raise _refuse(settings)  # none, two (joined by ","), oversized or no JWS
        header_b64, claims_b64, signature_b64 = header.split(".")
        try:
            jose = parse_object(decode_segment(header_b64))
            algorithm, key, jwk = self._key_of(jose)
            signing_input = header[: len(header_b64) + 1 + len(claims_b64)].encode("ascii")
            if not algorithm.verify(signing_input, key, decode_segment(signature_b64)):
                raise _refuse(settings)
            claims = parse_object(decode_segment(claims_b64))
        except (ValueError, binascii.Error, RecursionError, TypeError) as exc:
            raise _refuse(settings) from exc
        jti = self._check_claims(claims, method=method, url=url, now=now)
        if access_token is not None:
            ath = claims.get("ath")
            if type(ath) is not str or not hmac.compare_digest(
                ath.encode("utf-8", "replace"), access_token_hash(access_token).encode()
            ):
                raise _refuse(settings)
        if settings.nonce and not self._nonce_valid(claims.get("nonce"), now):
            raise UseDPoPNonce(algs=settings.algs, nonce=self.nonce(now))
        jkt = thumbprint(jwk)
        # Last, so that a refused proof never takes a place in the cache. A
        # proof is acceptable from iat - window to iat + window.
        window = settings.max_age + settings.leeway
        subject = self.keyring.derive("dpop-jti", f"{jkt}.{jti}".encode()).hex()[:32]
        if not self.replay.first_use(subject, 2 * window + 1):
            raise _refuse(settings)
        return Proof(jkt=jkt, jti=jti)

    def _key_of(self, jose: Mapping[str, Any]) -> tuple[Algorithm, Any, dict[str, Any]]:
        """The algorithm, verification key and canonical public JWK of a proof's header."""
        settings = self.settings
        alg = jose.get("alg")
        jwk = jose.get("jwk")
        if (
            jose.get("typ") != PROOF_TYPE
            or type(alg) is not str
            or alg not in self._allowed
            or "crit" in jose
            or type(jwk) is not dict
            or not PRIVATE_MEMBERS.isdisjoint(jwk)
        ):
            raise _refuse(settings)
        kty, curves = KEY_TYPES[alg]
        if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
            raise _refuse(settings)
        algorithm = _ALGORITHMS[alg]
        try:
            # PyJWK loads the key; prepare_key checks its type and curve for alg.
            key = algorithm.prepare_key(PyJWK(jwk, algorithm=alg).key)
            if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
                raise _refuse(settings)
            # The key as PyJWT writes it: one thumbprint per key, however spelled.
            canonical: dict[str, Any] = dict(algorithm.to_jwk(key, as_dict=True))
        except _KEY_ERRORS as exc:
            raise _refuse(settings) from exc
        return algorithm, key, canonical

    def _check_claims(self, claims: Mapping[str, Any], *, method: str, url: str, now: float) -> str:
        """Check ``jti``, ``htm``, ``htu`` and ``iat``; return the ``jti``."""
        settings = self.settings
        jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
        if (
            type(jti) is not str
            or not 0 < len(jti) <= MAX_JTI_CHARS
            or type(htm) is not str
            or htm != method
            or type(htu) is not str
            or len(htu) > MAX_PROOF_CHARS
        ):
            raise _refuse(settings)
        expected = normalize_url(url)
        if expected is None or normalize_url(htu) != expected:
            raise _refuse(settings)
        if not (type(iat) is int or (type(iat) is float and math.isfinite(iat))):
            raise _refuse(settings)
        # Compared as integers first: a huge int cannot be made a float.
        if abs(int(now) - int(iat)) > settings.max_age + settings.leeway + 1:
            raise _refuse(settings)
        if abs(now - iat) > settings.max_age + settings.leeway:
            raise _refuse(settings)
        return jti
