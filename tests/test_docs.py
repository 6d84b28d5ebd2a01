"""The documentation matches the code: every configuration key has one entry."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from flask_cocart_jwt.config import DEFAULTS

DOCS = Path(__file__).resolve().parent.parent / "docs"
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
