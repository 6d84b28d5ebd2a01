"""Property tests: random and mutated tokens only ever give a documented 401."""

from __future__ import annotations

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_cocart_jwt.config import load_settings
from flask_cocart_jwt.exceptions import InvalidToken, TokenExpired
from flask_cocart_jwt.tokens import decode_access_token
from tests.conftest import SECRET, AuthActions
from tests.security import TOKEN_ERRORS, b64, sender, unb64

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
DECODER_SETTINGS = load_settings({"COCART_JWT_SECRET_KEY": SECRET}, "instance")
TOKENISH = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ")


@pytest.fixture
def valid(app: Flask) -> str:
    token: str = AuthActions(app.test_client()).tokens()["access_token"]
    return token


def check(app: Flask, token: str) -> None:
    for endpoint in ("/me", "/auth/validate-token"):
        response = sender(app.test_client(), endpoint)(token)
        assert response.status_code == 401, (token, response.get_data()[:200])
        assert response.json["error"] in TOKEN_ERRORS


@FUZZ
@given(token=st.one_of(TOKENISH, st.text(alphabet=PRINTABLE, max_size=300)))
def test_random_text(app: Flask, token: str) -> None:
    check(app, token)


@FUZZ
@given(data=st.data())
def test_bit_flips_of_a_valid_token(app: Flask, valid: str, data: st.DataObject) -> None:
    segments = valid.split(".")
    index = data.draw(st.integers(0, 2), label="segment")
    raw = bytearray(unb64(segments[index]))
    flips = data.draw(
        st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4, unique=True),
        label="bits",
    )
    for bit in flips:
        raw[bit // 8] ^= 1 << (bit % 8)
    segments[index] = b64(bytes(raw))
    check(app, ".".join(segments))


@FUZZ
@given(data=st.data())
def test_character_edits_of_a_valid_token(app: Flask, valid: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(valid) - 1), label="position")
    replacement = data.draw(st.text(alphabet=PRINTABLE, min_size=0, max_size=3), label="new")
    token = valid[:position] + replacement + valid[position + 1 :]
    if token == valid or token.strip() == valid:
        return
    check(app, token)


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=400))
def test_decoder_raises_only_auth_errors(token: str) -> None:
    with pytest.raises((InvalidToken, TokenExpired)):
        decode_access_token(token, DECODER_SETTINGS, 1_900_000_000)
