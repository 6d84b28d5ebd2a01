"""The ``@jwt_required`` view decorator."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast, overload

from .context import verify_jwt_in_request
from .request_state import current_request

P = ParamSpec("P")
R = TypeVar("R")


@overload
def jwt_required(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def jwt_required(
    *, optional: bool = False, fresh: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def jwt_required(
    fn: Callable[P, R] | None = None, /, *, optional: bool = False, fresh: bool = False
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Protect a view with an access token.

    Use it bare or called::

        @app.get("/orders")
        @jwt_required
        def orders(): ...

        @app.post("/password")
        @jwt_required(fresh=True)
        def change_password(): ...

    ``OPTIONS`` requests (CORS preflight) pass without a token. Async views
    work. The decorated view keeps its signature for type checkers.

    :param optional: let requests without a token through; an invalid token
        is still refused.
    :param fresh: require a token issued by a login, not by a refresh.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(view):
            async_view = cast(Callable[P, Awaitable[Any]], view)

            @functools.wraps(view)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if current_request().method != "OPTIONS":
                    verify_jwt_in_request(optional=optional, fresh=fresh)
                return await async_view(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if current_request().method != "OPTIONS":
                verify_jwt_in_request(optional=optional, fresh=fresh)
            return view(*args, **kwargs)

        return wrapper

    if fn is not None:
        return decorator(fn)
    return decorator
