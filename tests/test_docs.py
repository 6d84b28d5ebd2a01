"""The documentation matches the code: every configuration key has one entry,
and the token responses shown are the ones the routes send, in their order."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from examples.shop import create_app
from flask_cocart_jwt.config import DEFAULTS
from tests.conftest import SECRET

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"
CONFIGURATION = DOCS / "configuration.rst"
DATA = re.compile(r"^\.\. data:: (\S+)\s*$", re.M)
DEFAULT = re.compile(r"^    Default: ``(.+)``\s*$", re.M)
REFERENCE = re.compile(r":data:`~?(COCART_JWT_\w+)`")


def _entries() -> dict[str, str]:
    """Each ``.. data::`` entry of the configuration page and its body."""
    text = CONFIGURATION.read_text()
    matches = list(DATA.finditer(text))
    entries: dict[str, str] = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        assert match[1] not in entries, f"{match[1]} is documented twice"
        entries[match[1]] = text[match.end() : end]
    return entries


def test_every_config_key_is_documented() -> None:
    missing = [key for key in DEFAULTS if key not in _entries()]
    assert not missing, f"config keys without a '.. data::' entry: {missing}"


def test_no_stale_keys_documented() -> None:
    stale = set(_entries()) - set(DEFAULTS)
    assert not stale, f"documented config keys that do not exist: {sorted(stale)}"


def test_no_data_entries_elsewhere() -> None:
    for page in DOCS.glob("*.rst"):
        if page != CONFIGURATION:
            names = DATA.findall(page.read_text())
            keys = [name for name in names if name.startswith("COCART_JWT_")]
            assert not keys, f"config keys documented outside configuration.rst: {keys}"


def test_documented_defaults_match() -> None:
    wrong = {}
    for key, body in _entries().items():
        found = DEFAULT.search(body)
        assert found, f"{key} has no 'Default: ``...``' line"
        documented = eval(found[1], {"__builtins__": {}}, {"timedelta": timedelta})  # noqa: S307
        if documented != DEFAULTS[key]:
            wrong[key] = (found[1], DEFAULTS[key])
    assert not wrong, f"documented defaults differ from DEFAULTS: {wrong}"


def test_references_name_real_keys() -> None:
    for page in DOCS.glob("*.rst"):
        unknown = set(REFERENCE.findall(page.read_text())) - set(DEFAULTS)
        assert not unknown, f"{page.name} refers to unknown keys: {sorted(unknown)}"


# -- token responses in the order the routes send them ----------------------


def documented_answers(path: Path, route: str) -> list[Any]:
    """The JSON answers shown after each ``$ curl ... /auth/<route>`` of a page.

    A command may continue over lines ending in a backslash; its answer runs
    until the next command, a blank line or the end of the code block.
    """
    lines = [line.strip() for line in path.read_text().splitlines()]
    answers = []
    for i, line in enumerate(lines):
        if not line.startswith("$ curl"):
            continue
        command = [line]
        while command[-1].endswith("\\"):
            i += 1
            command.append(lines[i])
        if f"/auth/{route} " not in " ".join(command) + " ":
            continue
        answer = []
        for following in lines[i + 1 :]:
            if not following or following.startswith(("$", "```")):
                break
            answer.append(following)
        answers.append(json.loads(" ".join(answer)))
    return answers


def _shape(value: Any) -> Any:
    """The keys of ``value`` in order, nested objects included."""
    if isinstance(value, dict):
        return [(key, _shape(item)) for key, item in value.items()]
    return type(value).__name__


@pytest.fixture(params=[True, False], ids=["sort_keys", "insertion_order"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
            "COCART_JWT_SECRET_KEY": SECRET,
        }
    )
    app.json.sort_keys = request.param  # type: ignore[attr-defined]
    result = app.test_cli_runner().invoke(args=["init-db"])  # the shop's tables and demo user
    assert result.exit_code == 0, result.output
    return app


def test_documented_token_responses_are_in_the_order_sent(shop: Flask) -> None:
    """The README and the quick start show the members as the routes send them."""
    client = shop.test_client()
    login = client.post("/auth/login", json={"username": "demo", "password": "demo-password"})
    refresh = client.post(
        "/auth/refresh-token", json={"refresh_token": login.json["refresh_token"]}
    )
    sent = {
        "login": _shape(json.loads(login.get_data())),
        "refresh-token": _shape(json.loads(refresh.get_data())),
    }
    pages = {README: ["login"], DOCS / "quickstart.rst": ["login", "refresh-token"]}
    for page, routes in pages.items():
        for route in routes:
            answers = documented_answers(page, route)
            assert answers, (page.name, route)
            for answer in answers:
                assert _shape(answer) == sent[route], (page.name, route)


def test_the_order_check_sees_a_wrong_order(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        "    $ curl -s -X POST localhost:5000/auth/login \\\n"
        "           -d '{}'\n"
        '    {"token_type": "Bearer",\n'
        '     "access_token": "eyJ..."}\n'
        "\n"
    )
    (answer,) = documented_answers(page, "login")
    assert _shape(answer) != _shape({"access_token": "eyJ...", "token_type": "Bearer"})
