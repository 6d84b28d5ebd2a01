"""URL rules that give every request under the prefix a JSON answer, at no cost to others.

Werkzeug answers a path that matches no rule, or a method that no rule of the
path takes, with its own HTML 404 or 405 before any blueprint is known. The
token routes answer JSON instead (SPEC section 12), and they do it with URL
rules rather than an app-wide ``before_request`` hook, so that the app's
other routes run no code of the extension:

* beside each token route, a rule for *any* method (``TRACE`` and ``FOO``
  included) that answers 405 with the route's own ``Allow``;
* below the prefix, a catch-all for unknown paths (``/auth/logout``,
  ``/auth/refresh-token/``) that answers 404. It compares the prefix without
  regard to case, so ``/AUTH/login`` is a JSON 404 too; the app's own routes
  still win over it, as every static or more specific rule does.

.. versionadded:: 0.2
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, Rule

#: The name of the prefix converter in the app's URL map.
PREFIX_CONVERTER = "cocart_jwt_prefix"
#: The methods an app's own route under the prefix is asked about.
_KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class AnyMethod(set[str]):
    """The methods of an :class:`AnyMethodRule`: every method is in it.

    Its elements (``{"ANY"}``) are what ``flask routes`` shows.
    """

    def __contains__(self, method: object) -> bool:
        return True


class AnyMethodRule(Rule):
    """A URL rule that matches its path with whatever method the request has."""

    def __init__(self, string: str, **options: Any) -> None:
        super().__init__(string, **options)
        self.methods = AnyMethod({"ANY"})


def prefix_converter(prefix: str) -> type[BaseConverter]:
    """A converter that matches ``prefix`` (without its leading ``/``), in any case."""
    bare = prefix.strip("/")
    pattern = "".join(
        f"[{char.lower()}{char.upper()}]" if char.lower() != char.upper() else re.escape(char)
        for char in bare
    )
    return type(
        "PrefixConverter",
        (BaseConverter,),
        {"regex": pattern, "part_isolating": "/" not in bare, "__doc__": f"{prefix!r}, any case."},
    )


def fallback_rules(
    blueprint_name: str,
    routes: Iterable[tuple[str, str, Callable[..., Any]]],
    not_found: Callable[..., Any],
) -> Callable[[BlueprintSetupState], None]:
    """A blueprint setup function that adds the fallback rules to the app.

    :param routes: ``(path, endpoint, view)`` of each token route's "other
        methods" view, which answers for every method the route does not take.
    :param not_found: the view of unknown paths under the prefix.
    """
    table = tuple(routes)

    def register(state: BlueprintSetupState) -> None:
        app = state.app
        prefix = (state.url_prefix or "").rstrip("/")
        for path, endpoint, view in table:
            name = f"{blueprint_name}.{endpoint}"
            app.url_map.add(AnyMethodRule(prefix + path, endpoint=name))
            app.view_functions[name] = view
        if not prefix:  # an empty prefix: unknown paths stay the app's 404s
            return
        app.url_map.converters[PREFIX_CONVERTER] = prefix_converter(prefix)
        name = f"{blueprint_name}.unrouted"
        under = f"/<{PREFIX_CONVERTER}:_prefix>"
        for rule in (under, under + "/", under + "/<path:_path>"):
            app.url_map.add(AnyMethodRule(rule, endpoint=name))
        app.view_functions[name] = not_found

    return register


def methods_of_other_rules() -> list[str]:
    """The methods that rules other than the fallbacks take at the request's path.

    An app's own route under the prefix (``/auth/extra``) asked with a method
    it does not take lands on the catch-all; its answer is then a 405 with
    that route's ``Allow``, not a 404. Runs on that error path only.
    """
    adapter = current_app.create_url_adapter(request)
    if adapter is None:
        return []
    allowed = []
    for method in _KNOWN_METHODS:
        try:
            rule, _args = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if not isinstance(rule, AnyMethodRule):
            allowed.append(method)
    return allowed
