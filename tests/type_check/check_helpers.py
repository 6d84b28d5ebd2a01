"""Checked by ``mypy --strict tests/type_check``: the helpers outside the decorators.

Not collected by pytest (the file name does not start with ``test_``).
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask, Response

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

from flask_cocart_jwt import CoCartJWT, decode_token
from flask_cocart_jwt.openapi import openapi_document

cocart_jwt = CoCartJWT()
app = Flask(__name__)


@app.post("/signup")
def signup() -> Response:
    pair = cocart_jwt.issue_tokens(object())
    return pair.to_response(201, extra={"user": {"id": 1}})


def claims_of(token: str) -> dict[str, Any]:
    with app.app_context():
        return assert_type(decode_token(token), dict[str, Any])


assert_type(openapi_document(url_prefix="/api", openapi_route=False), dict[str, Any])
