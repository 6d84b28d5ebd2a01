"""The settings of DPoP (``COCART_JWT_DPOP``, RFC 9449), validated once.

:func:`load_dpop_settings` reads the DPoP keys of an app's merged
configuration (:mod:`flask_cocart_jwt.config` holds their defaults) and
returns a frozen :class:`DPoPSettings`, or ``None`` when DPoP is ``"off"``.
The other keys are checked whatever the mode, so that a mistake fails at
start-up and not on the day DPoP is switched on.

.. versionadded:: 0.2
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .exceptions import ConfigurationError

#: The values of ``COCART_JWT_DPOP``.
DPOP_MODES = ("off", "optional", "required")
#: The proof algorithms that can be allowed: asymmetric JWS algorithms only
#: (RFC 9449 section 4.2: never ``none`` nor a MAC).
PROOF_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: The longest ``COCART_JWT_DPOP_MAX_AGE``: a proof is meant for one request.
MAX_PROOF_AGE = 3600


@dataclass(frozen=True, slots=True)
class DPoPSettings:
    """How DPoP proofs are checked; built only when ``COCART_JWT_DPOP`` is not ``"off"``."""

    #: ``"optional"`` or ``"required"``.
    mode: str
    #: The accepted proof algorithms, in the configured order.
    algorithms: tuple[str, ...]
    #: The accepted ``iat`` distance from now, in seconds (either side).
    max_age: int
    #: Whether proofs must carry a server nonce (RFC 9449 section 8).
    nonce: bool
    #: The seconds of clock skew also allowed (``COCART_JWT_LEEWAY``).
    leeway: int

    @property
    def required(self) -> bool:
        """Whether every token must be bound (``"required"``)."""
        return self.mode == "required"

    @property
    def algs(self) -> str:
        """The accepted algorithms as the ``algs`` of a ``WWW-Authenticate: DPoP``."""
        return " ".join(self.algorithms)


def _algorithms(value: object) -> tuple[str, ...]:
    key = "COCART_JWT_DPOP_ALGORITHMS"
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigurationError(
            f"{key} must be a non-empty list or tuple of JWS algorithms such as "
            f"('ES256', 'EdDSA'); got {value!r}."
        )
    for algorithm in value:
        if algorithm not in PROOF_ALGORITHMS:
            raise ConfigurationError(
                f"{key}: {algorithm!r} cannot sign DPoP proofs. Use asymmetric algorithms "
                f"only: {', '.join(sorted(PROOF_ALGORITHMS))}."
            )
    if len(set(value)) != len(value):
        raise ConfigurationError(f"{key} lists an algorithm twice: {value!r}.")
    return tuple(value)


def _max_age(value: object) -> int:
    key = "COCART_JWT_DPOP_MAX_AGE"
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"{key} must be a datetime.timedelta or a number of seconds.")
    if not math.isfinite(seconds) or not 1 <= seconds <= MAX_PROOF_AGE:
        raise ConfigurationError(
            f"{key} must be between one second and one hour; got {value!r}. A proof is "
            "made for one request: keep the window short (the default is 60 seconds)."
        )
    return int(seconds)


def load_dpop_settings(config: Mapping[str, Any], leeway: int) -> DPoPSettings | None:
    """Check the DPoP keys of ``config``; their settings, or ``None`` when ``"off"``.

    :param config: the merged ``COCART_JWT_*`` configuration.
    :param leeway: the validated ``COCART_JWT_LEEWAY``, in seconds.
    :raises ConfigurationError: an ill-typed or unknown value.
    """
    mode = config["COCART_JWT_DPOP"]
    if mode not in DPOP_MODES:
        raise ConfigurationError(
            f"COCART_JWT_DPOP must be one of {', '.join(DPOP_MODES)}; got {mode!r}."
        )
    algorithms = _algorithms(config["COCART_JWT_DPOP_ALGORITHMS"])
    max_age = _max_age(config["COCART_JWT_DPOP_MAX_AGE"])
    nonce = config["COCART_JWT_DPOP_NONCE"]
    if not isinstance(nonce, bool):
        raise ConfigurationError(f"COCART_JWT_DPOP_NONCE must be True or False; got {nonce!r}.")
    if mode == "off":
        return None
    if str(config["COCART_JWT_HEADER_TYPE"]).lower() == "dpop":
        raise ConfigurationError(
            "COCART_JWT_HEADER_TYPE cannot be 'DPoP' with COCART_JWT_DPOP on: DPoP is the "
            "scheme of bound tokens. Keep 'Bearer' for unbound ones."
        )
    return DPoPSettings(
        mode=mode, algorithms=algorithms, max_age=max_age, nonce=nonce, leeway=leeway
    )
