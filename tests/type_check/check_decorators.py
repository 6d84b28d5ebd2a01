"""Checked by ``mypy --strict tests/type_check``: decorated views keep their types.

Not collected by pytest (the file name does not start with ``test_``).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from flask import Response, jsonify

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

from flask_cocart_jwt import (
    AuthError,
    CoCartJWT,
    TokenPair,
    get_current_user,
    get_jwt,
    get_jwt_identity,
    jwt_required,
    verify_jwt_in_request,
)

cocart_jwt = CoCartJWT()


@jwt_required
def bare(order_id: int, *, expand: bool = False) -> Response:
    return jsonify(order_id=order_id, expand=expand)


@jwt_required()
def called(slug: str) -> str:
    return slug


@jwt_required(optional=True, fresh=False)
def optional() -> dict[str, Any]:
    return get_jwt()


@jwt_required(fresh=True)
async def async_view(item: int) -> list[int]:
    return [item]


class BareView(Protocol):
    def __call__(self, order_id: int, *, expand: bool = ...) -> Response: ...


bare_view: BareView = bare
called_view: Callable[[str], str] = called
async_callable: Callable[[int], Awaitable[list[int]]] = async_view
assert_type(bare(1, expand=True), Response)
assert_type(called("a"), str)
assert_type(optional(), dict[str, Any])


async def use_async_view() -> None:
    assert_type(await async_view(1), list[int])


bare("not an int")  # type: ignore[arg-type]
called(1)  # type: ignore[arg-type]
bare(1, expand=True, extra=1)  # type: ignore[call-arg]

assert_type(get_jwt(), dict[str, Any])
assert_type(get_jwt_identity(), str | None)
assert_type(verify_jwt_in_request(), dict[str, Any] | None)
assert_type(get_current_user(), Any)


@cocart_jwt.credentials_checker
def check(username: str, password: str) -> str | None:
    return username if password else None


@cocart_jwt.user_loader
def load(identity: str) -> str | None:
    return identity


@cocart_jwt.error_response_loader
def render(error: AuthError) -> Response:
    return jsonify(error.to_dict())


checker: Callable[[str, str], str | None] = check
assert_type(check("a", "b"), str | None)
assert_type(load("a"), str | None)
assert_type(render(AuthError()), Response)
assert_type(cocart_jwt.issue_tokens("alice"), TokenPair)
