"""Per-app state: the frozen settings, the store and the revocation view.

The extension object is shared by every app it is initialised on; what differs
between apps lives in one :class:`AppState` each, created by ``init_app``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from .config import Settings
from .revocation import RevocationView
from .store import Store

if TYPE_CHECKING:
    from .extension import CoCartJWT

EXTENSION_KEY = "cocart_jwt"


@dataclass(eq=False)
class AppState:
    """What one app needs at request time."""

    settings: Settings
    store: Store
    revocations: RevocationView | None
    limits: Any = None


def current_extension() -> tuple[CoCartJWT, AppState]:
    """The extension and the state of the current app.

    :raises RuntimeError: outside an app context, or when ``init_app`` was not
        called on this app.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        ext: CoCartJWT = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "Flask-CoCart-JWT is not initialised on this app. "
            "Did you forget to call cocart_jwt.init_app(app)?"
        ) from None
    return ext, ext._states[app]
