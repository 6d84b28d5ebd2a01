"""Every configuration key is documented."""

from __future__ import annotations

from pathlib import Path

from flask_cocart_jwt.config import DEFAULTS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_config_key_is_documented() -> None:
    text = DOCS.read_text()
    missing = [key for key in DEFAULTS if f"### `{key}`" not in text]
    assert not missing, f"undocumented config keys: {missing}"


def test_no_stale_keys_documented() -> None:
    documented = {line[5:-1] for line in DOCS.read_text().splitlines() if line.startswith("### `")}
    assert documented <= set(DEFAULTS), documented - set(DEFAULTS)
