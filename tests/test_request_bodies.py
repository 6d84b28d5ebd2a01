"""Request bodies of the token routes: read at most the cap + 1 byte, chunked or not.

A ``Transfer-Encoding: chunked`` body has no ``Content-Length`` to refuse it
by; the routes must stop reading at the cap instead of reading it whole. The
WSGI input here is a counting stream, as a server that terminates chunked
input (``wsgi.input_terminated``, gunicorn's) hands it over. The same through
a real gunicorn server, with its memory watched, is in
``tests/integration/test_large_bodies.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from flask_cocart_jwt import CoCartJWT
from flask_cocart_jwt.transport import MAX_BODY_BYTES
from tests.conftest import assert_error


class CountingStream(io.RawIOBase):
    """``size`` bytes of ``fill``, counting how many were read."""

    def __init__(self, size: int, fill: bytes = b"a", prefix: bytes = b"") -> None:
        self.prefix = prefix
        self.size = size
        self.fill = fill
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        start = self.read_bytes
        chunk = (self.prefix + self.fill * (start + n))[start : start + n]
        buffer[:n] = chunk
        self.read_bytes += n
        return n


def post_chunked(client: FlaskClient, path: str, stream: io.RawIOBase, content_type: str) -> Any:
    """POST ``stream`` without ``Content-Length``, as a chunked request arrives."""
    return client.post(
        path,
        headers={"Transfer-Encoding": "chunked", "Content-Type": content_type},
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True},
    )


ROUTES = [
    ("/auth/login", "application/json"),
    ("/auth/login", "application/x-www-form-urlencoded"),
    ("/auth/login", "multipart/form-data; boundary=xyz"),
    ("/auth/refresh-token", "application/json"),
    ("/auth/revoke", "application/json"),
    ("/auth/revoke", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
def test_chunked_body_over_the_cap_is_refused_unread(
    client: FlaskClient, path: str, content_type: str
) -> None:
    stream = CountingStream(4 * 1024 * 1024)
    response = post_chunked(client, path, stream, content_type)
    assert_error(response, 400, "invalid_request")
    assert response.json["message"] == "The request body is too large."
    assert stream.read_bytes <= MAX_BODY_BYTES + 1


def test_chunked_body_within_the_cap_is_read(client: FlaskClient) -> None:
    body = json.dumps({"username": "alice", "password": "wonderland"}).encode()
    response = post_chunked(
        client, "/auth/login", CountingStream(len(body), b"", body), "application/json"
    )
    assert response.status_code == 200, response.json
    form = b"username=bob&password=builder"
    response = post_chunked(
        client,
        "/auth/login",
        CountingStream(len(form), b"", form),
        "application/x-www-form-urlencoded",
    )
    assert response.status_code == 200, response.json


def test_body_at_the_cap_exactly_is_read(client: FlaskClient) -> None:
    body = json.dumps({"username": "alice", "password": "wonderland"})
    body += " " * (MAX_BODY_BYTES - len(body))
    data = body.encode()
    response = post_chunked(
        client, "/auth/login", CountingStream(len(data), b"", data), "application/json"
    )
    assert response.status_code == 200, response.json


def test_callbacks_still_see_the_body(make_app: Callable[..., Flask]) -> None:
    # The bounded read keeps the body for request.get_json() and request.form.
    ext = CoCartJWT()
    app = make_app(extension=ext, COCART_JWT_RATELIMIT_ENABLED=False)
    seen: list[Any] = []

    @ext.login_response_loader
    def extra(user: Any) -> dict[str, Any]:
        seen.append(request.get_json(silent=True) or request.form.to_dict())
        return {}

    client = app.test_client()
    body = json.dumps({"username": "alice", "password": "wonderland", "remember": True}).encode()
    response = post_chunked(
        client, "/auth/login", CountingStream(len(body), b"", body), "application/json"
    )
    assert response.status_code == 200
    response = client.post("/auth/login", data={"username": "bob", "password": "builder"})
    assert response.status_code == 200
    assert seen == [
        {"username": "alice", "password": "wonderland", "remember": True},
        {"username": "bob", "password": "builder"},
    ]


def test_declared_length_over_the_cap_is_refused_before_reading(client: FlaskClient) -> None:
    stream = CountingStream(MAX_BODY_BYTES + 1)
    response = client.post(
        "/auth/login",
        headers={"Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES + 1)},
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(MAX_BODY_BYTES + 1)},
    )
    assert_error(response, 400, "invalid_request")
    assert stream.read_bytes == 0
