"""Signing and verification keys: loading, checking, key ids and JWKS.

Every key is bound to exactly one algorithm when the configuration is loaded;
the algorithm of a token is never taken from the token itself. A token's
``kid`` can only select one of the keys configured here.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from .exceptions import ConfigurationError

#: The algorithms the extension accepts, by family.
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512"})
OKP_ALGORITHMS = frozenset({"EdDSA"})
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | RSA_ALGORITHMS | EC_ALGORITHMS | OKP_ALGORITHMS

#: The shortest secret accepted for HS* (SPEC); HS384/HS512 need their digest
#: size (48 and 64 bytes, RFC 7518 section 3.2).
MIN_SECRET_BYTES = 32
#: A secret with fewer distinct bytes than this is refused as guessable.
MIN_DISTINCT_SECRET_BYTES = 8
_DIGEST_SIZES = {"HS256": 32, "HS384": 48, "HS512": 64}

_ALGORITHMS: dict[str, Algorithm] = get_default_algorithms()
_HMAC_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
#: The ``typ`` header of access tokens (RFC 9068).
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105

_KEY_TYPES: dict[frozenset[str], tuple[type[Any], ...]] = {
    RSA_ALGORITHMS: (rsa.RSAPrivateKey, rsa.RSAPublicKey),
    EC_ALGORITHMS: (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey),
    OKP_ALGORITHMS: (
        ed25519.Ed25519PrivateKey,
        ed25519.Ed25519PublicKey,
        ed448.Ed448PrivateKey,
        ed448.Ed448PublicKey,
    ),
}

# RFC 7638: the members of each key type that make up its thumbprint.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}
_THUMBPRINT_MEMBERS["OKP"] = ("crv", "kty", "x")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url text."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key that may verify tokens whose header names its ``kid``.

    :param kid: the key id.
    :param algorithm: the one JWS algorithm this key verifies.
    :param key: the key prepared for PyJWT's algorithm object.
    :param public_jwk: the public JWK (RFC 7517) of an asymmetric key, else
        ``None``; never holds private material.
    """

    kid: str
    algorithm: str
    key: Any = field(repr=False)
    public_jwk: Mapping[str, str] | None = None
    #: The HMAC state after the key, copied per token (HS* only).
    _mac: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        digest = _HMAC_DIGESTS.get(self.algorithm)
        if digest is not None:
            object.__setattr__(self, "_mac", hmac.new(self.key, digestmod=digest))

    @property
    def header(self) -> str:
        """The encoded JWS header the extension writes for this key."""
        return encoded_header(self.algorithm, self.kid)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Check ``signature`` over ``signing_input`` in constant time."""
        return _ALGORITHMS[self.algorithm].verify(signing_input, self.key, signature)

    def verify_encoded(self, signing_input: bytes, signature_b64: str) -> bool | None:
        """Check an HMAC signature still in base64url, in constant time.

        The expected MAC is computed from a copy of the keyed state and
        compared in its canonical encoding, so a non-canonical signature
        cannot match.

        :returns: ``None`` for asymmetric keys (use :meth:`verify`).
        """
        if self._mac is None:
            return None
        mac = self._mac.copy()
        mac.update(signing_input)
        return hmac.compare_digest(b64url(mac.digest()), signature_b64)


def encoded_header(algorithm: str, kid: str) -> str:
    """The base64url JWS header of an access token: ``alg``, ``typ``, ``kid``."""
    header = {"alg": algorithm, "typ": ACCESS_TOKEN_TYPE, "kid": kid}
    return b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Keyring:
    """The signing key and every key that may verify a token, by ``kid``.

    :param signing_kid: the ``kid`` written into new tokens.
    :param algorithm: the algorithm of new tokens.
    :param signing_key: the secret or private key (never logged).
    :param verification_keys: ``kid`` to key, the signing key included.
    :param derivation_secret: secret material for the keyed hashes the
        extension derives (successor refresh tokens, rate-limit keys).
    """

    signing_kid: str
    algorithm: str
    signing_key: Any = field(repr=False)
    verification_keys: Mapping[str, VerificationKey]
    derivation_secret: bytes = field(repr=False)
    #: The exact encoded headers the extension writes, to their key: a token
    #: whose header is one of them skips header parsing (anything else is
    #: parsed and checked in full).
    known_headers: Mapping[str, VerificationKey] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.known_headers:
            headers = {k.header: k for k in self.verification_keys.values()}
            object.__setattr__(self, "known_headers", headers)

    def sign(self, signing_input: bytes) -> bytes:
        """Sign ``signing_input`` with the current key."""
        return _ALGORITHMS[self.algorithm].sign(signing_input, self.signing_key)

    def derive(self, label: str, data: bytes) -> bytes:
        """A keyed hash of ``data`` for the purpose named by ``label``."""
        key = hmac.new(self.derivation_secret, label.encode(), hashlib.sha256).digest()
        return hmac.new(key, data, hashlib.sha256).digest()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JWK Set (RFC 7517). Empty for HS* keys."""
        keys = [
            dict(k.public_jwk) for k in self.verification_keys.values() if k.public_jwk is not None
        ]
        return {"keys": keys}


def _family(algorithm: str) -> frozenset[str]:
    for family in (HMAC_ALGORITHMS, RSA_ALGORITHMS, EC_ALGORITHMS, OKP_ALGORITHMS):
        if algorithm in family:
            return family
    raise ConfigurationError(
        f"Unsupported algorithm {algorithm!r} in COCART_JWT_ALGORITHM or "
        f"COCART_JWT_DECODE_KEYS. Use one of: {', '.join(sorted(SUPPORTED_ALGORITHMS))}."
    )


def _secret_bytes(secret: object, algorithm: str, name: str) -> bytes:
    if isinstance(secret, str):
        try:
            secret = secret.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigurationError(f"{name} must be valid Unicode text or bytes.") from exc
    if not isinstance(secret, bytes) or not secret:
        raise ConfigurationError(
            f"{name} is required for {algorithm}. Generate one with "
            "'flask jwt keygen' or python -c \"import secrets; "
            "print(secrets.token_urlsafe(64))\"; the app's SECRET_KEY is never used."
        )
    needed = max(MIN_SECRET_BYTES, _DIGEST_SIZES[algorithm])
    if len(secret) < needed:
        raise ConfigurationError(
            f"{name} is too short for {algorithm}: {len(secret)} bytes. Use at least "
            f"{needed} random bytes, e.g. secrets.token_urlsafe(64)."
        )
    if _looks_guessable(secret):
        raise ConfigurationError(
            f"{name} is not random enough (a repeated pattern, a dominant byte or "
            f"fewer than {MIN_DISTINCT_SECRET_BYTES} distinct bytes). "
            "Use secrets.token_urlsafe(64)."
        )
    return secret


def _looks_guessable(secret: bytes) -> bool:
    """Whether ``secret`` is plainly not random.

    A cheap screen, not an entropy estimate: too few distinct bytes, one byte
    making up over 40% of the secret, or a repeated pattern.
    """
    if len(set(secret)) < MIN_DISTINCT_SECRET_BYTES:
        return True
    if max(secret.count(b) for b in set(secret)) * 5 > len(secret) * 2:
        return True
    return any(secret[p:] == secret[:-p] for p in range(1, len(secret) // 2 + 1))


def _hmac_key(secret: object, algorithm: str, name: str) -> Any:
    """Check an HS* secret and prepare it for PyJWT."""
    try:
        return _ALGORITHMS[algorithm].prepare_key(_secret_bytes(secret, algorithm, name))
    except InvalidKeyError as exc:
        # PyJWT refuses PEM/SSH/DER keys and JWK text as HMAC secrets.
        raise ConfigurationError(
            f"{name} looks like a PEM, DER, SSH or JWK key, not an HMAC secret. Use a "
            "random secret such as secrets.token_urlsafe(64)."
        ) from exc


def _load_pem(pem: object, name: str, *, private: bool) -> Any:
    if isinstance(pem, str):
        pem = pem.encode("utf-8")
    if not isinstance(pem, bytes) or not pem.strip():
        what = "private" if private else "public"
        raise ConfigurationError(f"{name} must be a PEM-encoded {what} key.")
    try:
        if private:
            return serialization.load_pem_private_key(pem, password=None)
        return serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        what = "an unencrypted PEM private" if private else "a PEM public"
        raise ConfigurationError(f"{name} is not {what} key.") from exc


def _check_asymmetric(key: Any, algorithm: str, name: str) -> Any:
    if not isinstance(key, _KEY_TYPES[_family(algorithm)]):
        raise ConfigurationError(
            f"{name} is a {type(key).__name__.lstrip('_')}, which cannot be used "
            f"with {algorithm}. Generate a matching key with "
            f"'flask jwt keygen --algorithm {algorithm}'."
        )
    alg = _ALGORITHMS[algorithm]
    try:
        prepared = alg.prepare_key(key)
    except (InvalidKeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name} does not fit {algorithm}: {exc}") from exc
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)) and key.key_size < 2048:
        raise ConfigurationError(
            f"{name} is a {key.key_size}-bit RSA key; {algorithm} needs at least 2048 bits."
        )
    return prepared


def _public_of(key: Any) -> Any:
    return key.public_key() if hasattr(key, "public_key") else key


def _public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def public_jwk(public_key: Any, algorithm: str, kid: str | None = None) -> dict[str, str]:
    """The public JWK of ``public_key``, with ``kid`` (default: thumbprint)."""
    jwk: dict[str, str] = dict(_ALGORITHMS[algorithm].to_jwk(public_key, as_dict=True))
    jwk.pop("key_ops", None)
    jwk["kid"] = kid or thumbprint(jwk)
    jwk["alg"] = algorithm
    jwk["use"] = "sig"
    return jwk


def thumbprint(jwk: Mapping[str, str]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK."""
    members = {m: jwk[m] for m in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def secret_kid(secret: bytes) -> str:
    """A key id for a secret: a keyed hash that reveals nothing of it."""
    return b64url(hmac.new(secret, b"cocart-jwt key id", hashlib.sha256).digest()[:12])


def _verification_key(kid: str, algorithm: str, material: object, name: str) -> VerificationKey:
    if algorithm in HMAC_ALGORITHMS:
        return VerificationKey(kid, algorithm, _hmac_key(material, algorithm, name))
    if isinstance(material, (str, bytes)) and b"PRIVATE KEY" in (
        material.encode() if isinstance(material, str) else material
    ):
        key = _public_of(_load_pem(material, name, private=True))
    else:
        key = _load_pem(material, name, private=False)
    prepared = _check_asymmetric(key, algorithm, name)
    return VerificationKey(kid, algorithm, prepared, public_jwk(prepared, algorithm, kid))


def load_keyring(config: Mapping[str, Any]) -> Keyring:
    """Build the :class:`Keyring` from an app's ``COCART_JWT_*`` config.

    :raises ConfigurationError: with a fix-it message for a missing, weak or
        mismatched key or an unsupported algorithm.
    """
    algorithm = config["COCART_JWT_ALGORITHM"]
    if not isinstance(algorithm, str):
        raise ConfigurationError("COCART_JWT_ALGORITHM must be a string such as 'HS256'.")
    family = _family(algorithm)
    kid = config["COCART_JWT_KEY_ID"]
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 128):
        raise ConfigurationError("COCART_JWT_KEY_ID must be a non-empty string of <= 128 chars.")

    keys: dict[str, VerificationKey] = {}
    if family is HMAC_ALGORITHMS:
        signing_key: Any = _hmac_key(
            config["COCART_JWT_SECRET_KEY"], algorithm, "COCART_JWT_SECRET_KEY"
        )
        secret: bytes = signing_key
        kid = kid or secret_kid(secret)
        keys[kid] = VerificationKey(kid, algorithm, signing_key)
        derivation = secret
    else:
        if config["COCART_JWT_PRIVATE_KEY"] is None:
            raise ConfigurationError(
                f"COCART_JWT_PRIVATE_KEY is required for {algorithm}. Generate a key pair "
                f"with 'flask jwt keygen --algorithm {algorithm}'."
            )
        private = _load_pem(
            config["COCART_JWT_PRIVATE_KEY"], "COCART_JWT_PRIVATE_KEY", private=True
        )
        signing_key = _check_asymmetric(private, algorithm, "COCART_JWT_PRIVATE_KEY")
        public = _check_asymmetric(_public_of(private), algorithm, "COCART_JWT_PRIVATE_KEY")
        if config["COCART_JWT_PUBLIC_KEY"] is not None:
            given = _load_pem(
                config["COCART_JWT_PUBLIC_KEY"], "COCART_JWT_PUBLIC_KEY", private=False
            )
            if _public_der(given) != _public_der(public):
                raise ConfigurationError(
                    "COCART_JWT_PUBLIC_KEY is not the public half of COCART_JWT_PRIVATE_KEY."
                )
        jwk = public_jwk(public, algorithm, kid)
        kid = jwk["kid"]
        keys[kid] = VerificationKey(kid, algorithm, public, jwk)
        derivation = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    decode_keys = config["COCART_JWT_DECODE_KEYS"]
    if not isinstance(decode_keys, Mapping):
        raise ConfigurationError("COCART_JWT_DECODE_KEYS must be a dict of kid -> key.")
    for old_kid, material in decode_keys.items():
        name = f"COCART_JWT_DECODE_KEYS[{old_kid!r}]"
        if not isinstance(old_kid, str) or not old_kid or len(old_kid) > 128:
            raise ConfigurationError(f"{name}: a kid must be a non-empty string of <= 128 chars.")
        if old_kid in keys:
            raise ConfigurationError(f"{name}: the kid is already used by the current key.")
        old_algorithm = algorithm
        if isinstance(material, Mapping):
            old_algorithm = material.get("algorithm", algorithm)
            material = material.get("key")
            if not isinstance(old_algorithm, str):
                raise ConfigurationError(f"{name}: 'algorithm' must be a string.")
            _family(old_algorithm)
        keys[old_kid] = _verification_key(old_kid, old_algorithm, material, name)

    return Keyring(
        signing_kid=kid,
        algorithm=algorithm,
        signing_key=signing_key,
        verification_keys=keys,
        derivation_secret=hashlib.sha256(b"cocart-jwt derivation\x00" + derivation).digest(),
    )
