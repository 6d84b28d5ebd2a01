"""The OpenAPI 3.1 description of the token routes, shipped with the package.

Serve it, merge it into the app's own document, or feed it to a contract
tester::

    from flask_cocart_jwt.openapi import openapi_document

    @app.get("/openapi.json")
    def openapi():
        return openapi_document(url_prefix=app.config.get("COCART_JWT_URL_PREFIX", "/auth"))
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

#: The name of the document inside the package.
DOCUMENT = "openapi.json"


def openapi_document(*, url_prefix: str = "/auth") -> dict[str, Any]:
    """A fresh copy of the OpenAPI 3.1 document of the token routes.

    The paths are relative to the server URL, which is ``url_prefix``; pass
    the app's ``COCART_JWT_URL_PREFIX`` when it is not the default.

    :param url_prefix: the URL prefix of the ``cocart_jwt`` blueprint.

    .. versionadded:: 0.1
    """
    text = files(__name__.rpartition(".")[0]).joinpath(DOCUMENT).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    document["servers"][0]["url"] = url_prefix or "/"
    return document
