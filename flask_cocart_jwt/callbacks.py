"""The callbacks an app registers on the extension, each a decorator with a plain twin.

Like Flask's ``errorhandler`` / ``register_error_handler``: the decorator
stores the function and returns it unchanged; the ``register_*`` method does
the same for code that does not use decorators. Like Flask-Login's
``user_callback``, what is registered can be read through a read-only
``*_callback`` property; the per-app services read it there, at the time of
each call, so a callback registered after ``init_app`` is used too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, jsonify

from .exceptions import AuthError

F = TypeVar("F", bound=Callable[..., Any])


def default_identity(user: Any) -> str:
    """The default ``user_identity_loader``: ``str(user.id)``, else ``str(user)``."""
    identity = getattr(user, "id", None)
    return str(identity if identity is not None else user)


def default_error_response(error: AuthError) -> Response:
    """The default ``error_response_loader``: the contract's JSON error."""
    response = jsonify(error.to_dict())
    response.status_code = error.status_code
    response.headers.update(error.headers)
    return response


class Callbacks:
    """The callback registry of :class:`~flask_cocart_jwt.CoCartJWT`.

    .. versionchanged:: 0.2
        The ``*_callback`` properties.
    """

    def __init__(self) -> None:
        self._credentials_checker: Callable[[str, str], Any] | None = None
        self._user_identity_loader: Callable[[Any], str] = default_identity
        self._user_loader: Callable[[str], Any] | None = None
        self._additional_claims_loader: Callable[[Any], dict[str, Any]] | None = None
        self._login_response_loader: Callable[[Any], dict[str, Any]] | None = None
        self._error_response_loader: Callable[[AuthError], Response] = default_error_response

    def credentials_checker(self, f: F) -> F:
        """Register ``f(username, password) -> user | None`` for ``POST /login``.

        Return ``None`` for an unknown user and for a wrong password alike, and
        take the same time for both (hash a dummy password for unknown users).
        """
        self._credentials_checker = f
        return f

    def register_credentials_checker(self, f: Callable[[str, str], Any]) -> None:
        """Plain-method twin of :meth:`credentials_checker`."""
        self._credentials_checker = f

    def user_identity_loader(self, f: F) -> F:
        """Register ``f(user) -> str``, the token identity (``sub``) of a user.

        The default is ``str(user.id)``, else ``str(user)``.
        """
        self._user_identity_loader = f
        return f

    def register_user_identity_loader(self, f: Callable[[Any], str]) -> None:
        """Plain-method twin of :meth:`user_identity_loader`."""
        self._user_identity_loader = f

    def user_loader(self, f: F) -> F:
        """Register ``f(identity) -> user | None``, which backs ``current_user``.

        When set, a ``None`` result refuses the token (``user_not_found``) on
        protected views and on refresh.
        """
        self._user_loader = f
        return f

    def register_user_loader(self, f: Callable[[str], Any]) -> None:
        """Plain-method twin of :meth:`user_loader`."""
        self._user_loader = f

    def additional_claims_loader(self, f: F) -> F:
        """Register ``f(user) -> dict`` of extra access-token claims.

        Reserved claims (``sub``, ``exp``, ``sid``...) cannot be overridden. On
        refresh, ``user`` is what ``user_loader`` returns, or the identity
        string when there is no user loader.
        """
        self._additional_claims_loader = f
        return f

    def register_additional_claims_loader(self, f: Callable[[Any], dict[str, Any]]) -> None:
        """Plain-method twin of :meth:`additional_claims_loader`."""
        self._additional_claims_loader = f

    def login_response_loader(self, f: F) -> F:
        """Register ``f(user) -> dict`` of extra fields for the login response."""
        self._login_response_loader = f
        return f

    def register_login_response_loader(self, f: Callable[[Any], dict[str, Any]]) -> None:
        """Plain-method twin of :meth:`login_response_loader`."""
        self._login_response_loader = f

    def error_response_loader(self, f: F) -> F:
        """Register ``f(error: AuthError) -> Response`` to render errors your way."""
        self._error_response_loader = f
        return f

    def register_error_response_loader(self, f: Callable[[AuthError], Response]) -> None:
        """Plain-method twin of :meth:`error_response_loader`."""
        self._error_response_loader = f

    # -- what is registered (read-only) -----------------------------------

    @property
    def credentials_checker_callback(self) -> Callable[[str, str], Any] | None:
        """The registered ``credentials_checker``, or ``None``."""
        return self._credentials_checker

    @property
    def user_identity_loader_callback(self) -> Callable[[Any], str]:
        """The registered ``user_identity_loader`` (or the default)."""
        return self._user_identity_loader

    @property
    def user_loader_callback(self) -> Callable[[str], Any] | None:
        """The registered ``user_loader``, or ``None``."""
        return self._user_loader

    @property
    def additional_claims_loader_callback(self) -> Callable[[Any], dict[str, Any]] | None:
        """The registered ``additional_claims_loader``, or ``None``."""
        return self._additional_claims_loader

    @property
    def login_response_loader_callback(self) -> Callable[[Any], dict[str, Any]] | None:
        """The registered ``login_response_loader``, or ``None``."""
        return self._login_response_loader

    @property
    def error_response_loader_callback(self) -> Callable[[AuthError], Response]:
        """The registered ``error_response_loader`` (or the default)."""
        return self._error_response_loader
