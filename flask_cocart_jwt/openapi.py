"""The OpenAPI 3.1 description of the token routes, shipped with the package.

The token routes serve it at ``{COCART_JWT_URL_PREFIX}/openapi.json``
(``COCART_JWT_OPENAPI_ROUTE``). Merge it into the app's own document, or feed
it to a contract tester::

    from flask_cocart_jwt.openapi import openapi_document

    document = openapi_document(url_prefix=app.config.get("COCART_JWT_URL_PREFIX", "/auth"))
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

#: The name of the document inside the package.
DOCUMENT = "openapi.json"


#: The path of the document's own route, relative to the URL prefix.
OPENAPI_PATH = "/openapi.json"


def openapi_document(*, url_prefix: str = "/auth", openapi_route: bool = True) -> dict[str, Any]:
    """A fresh copy of the OpenAPI 3.1 document of the token routes.

    The paths are relative to the server URL, which is ``url_prefix``; pass
    the app's ``COCART_JWT_URL_PREFIX`` when it is not the default.

    :param url_prefix: the URL prefix of the ``cocart_jwt`` blueprint.
    :param openapi_route: whether the document lists its own route,
        ``GET /openapi.json``; pass the app's ``COCART_JWT_OPENAPI_ROUTE``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        The ``openapi_route`` parameter.
    """
    text = files(__name__.rpartition(".")[0]).joinpath(DOCUMENT).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    document["servers"][0]["url"] = url_prefix or "/"
    if not openapi_route:
        del document["paths"][OPENAPI_PATH]
    return document
