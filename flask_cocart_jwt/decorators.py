"""The ``@jwt_required`` view decorator."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast, overload

from flask import current_app

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

    A CORS preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``) gets the app's default ``OPTIONS``
    answer (``app.make_default_options_response()``, which Flask-CORS
    completes) without a token and without running the view. Any other
    ``OPTIONS`` request needs a token like every method, when the route lists
    ``OPTIONS`` itself or a ``MethodView`` defines ``options()``; otherwise
    Flask answers ``OPTIONS`` before the view is reached. Async views work.
    The decorated view keeps its signature for type checkers.

    :param optional: let requests without a token through; an invalid token
        is still refused.
    :param fresh: require a token issued by a login, not by a refresh.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(view):
            async_view = cast(Callable[P, Awaitable[Any]], view)

            @functools.wraps(view)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if _is_cors_preflight():
                    return current_app.make_default_options_response()
                verify_jwt_in_request(optional=optional, fresh=fresh)
                return await async_view(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if _is_cors_preflight():
                return cast(R, current_app.make_default_options_response())
            verify_jwt_in_request(optional=optional, fresh=fresh)
            return view(*args, **kwargs)

        return wrapper

    if fn is not None:
        return decorator(fn)
    return decorator


def _is_cors_preflight() -> bool:
    """Whether the current request is a CORS preflight (Fetch standard).

    The headers can be forged, which is why a preflight never reaches the
    view: it only gets the default ``OPTIONS`` answer.
    """
    current = current_request()  # not the request proxy: this runs on every request
    if current.method != "OPTIONS":
        return False
    headers = current.headers
    return "Origin" in headers and "Access-Control-Request-Method" in headers
