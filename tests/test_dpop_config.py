"""DPoP's configuration keys (SPEC 11): defaults, and every mistake a ConfigurationError."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from flask_cocart_jwt import ConfigurationError
from flask_cocart_jwt.config import DEFAULTS, load_settings
from tests.conftest import SECRET

MakeApp = Callable[..., Flask]


def test_defaults_follow_the_spec(tmp_path: Any) -> None:
    assert {k: v for k, v in DEFAULTS.items() if "DPOP" in k} == {
        "COCART_JWT_DPOP": "off",
        "COCART_JWT_DPOP_ALGORITHMS": ("ES256", "EdDSA", "PS256", "RS256"),
        "COCART_JWT_DPOP_MAX_AGE": timedelta(seconds=60),
        "COCART_JWT_DPOP_NONCE": False,
    }
    assert load_settings({"COCART_JWT_SECRET_KEY": SECRET}, str(tmp_path)).dpop is None
    dpop = load_settings(
        {"COCART_JWT_SECRET_KEY": SECRET, "COCART_JWT_DPOP": "required"}, str(tmp_path)
    ).dpop
    assert dpop is not None
    assert (dpop.mode, dpop.algorithms, dpop.max_age, dpop.nonce, dpop.required) == (
        "required",
        ("ES256", "EdDSA", "PS256", "RS256"),
        60,
        False,
        True,
    )
    assert dpop.algs == "ES256 EdDSA PS256 RS256"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"COCART_JWT_DPOP": True}, "COCART_JWT_DPOP must be one of off, optional, required"),
        ({"COCART_JWT_DPOP": "Required"}, "COCART_JWT_DPOP must be one of"),
        ({"COCART_JWT_DPOP_ALGORITHMS": "ES256"}, "non-empty list or tuple"),
        ({"COCART_JWT_DPOP_ALGORITHMS": ()}, "non-empty list or tuple"),
        ({"COCART_JWT_DPOP_ALGORITHMS": ["HS256"]}, "'HS256' cannot sign DPoP proofs"),
        ({"COCART_JWT_DPOP_ALGORITHMS": ["none"]}, "'none' cannot sign DPoP proofs"),
        ({"COCART_JWT_DPOP_ALGORITHMS": ["ES256", "es256"]}, "'es256' cannot sign"),
        ({"COCART_JWT_DPOP_ALGORITHMS": ["ES256", "ES256"]}, "lists an algorithm twice"),
        ({"COCART_JWT_DPOP_MAX_AGE": 0}, "between one second and one hour"),
        ({"COCART_JWT_DPOP_MAX_AGE": timedelta(hours=2)}, "between one second and one hour"),
        ({"COCART_JWT_DPOP_MAX_AGE": "60"}, "timedelta or a number of seconds"),
        ({"COCART_JWT_DPOP_MAX_AGE": float("nan")}, "between one second and one hour"),
        ({"COCART_JWT_DPOP_NONCE": "yes"}, "COCART_JWT_DPOP_NONCE must be True or False"),
        (
            {"COCART_JWT_DPOP": "optional", "COCART_JWT_HEADER_TYPE": "DPoP"},
            "COCART_JWT_HEADER_TYPE cannot be 'DPoP'",
        ),
    ],
)
def test_mistakes_fail_at_init_app(make_app: MakeApp, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_app(**config)


def test_the_keys_are_checked_while_dpop_is_off(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="cannot sign DPoP proofs"):
        make_app(COCART_JWT_DPOP="off", COCART_JWT_DPOP_ALGORITHMS=["HS512"])


def test_a_number_of_seconds_is_a_max_age(tmp_path: Any) -> None:
    config = {
        "COCART_JWT_SECRET_KEY": SECRET,
        "COCART_JWT_DPOP": "optional",
        "COCART_JWT_DPOP_MAX_AGE": 30,
        "COCART_JWT_DPOP_ALGORITHMS": ["ES256", "EdDSA"],
    }
    dpop = load_settings(config, str(tmp_path)).dpop
    assert dpop is not None
    assert (dpop.max_age, dpop.algorithms) == (30, ("ES256", "EdDSA"))
