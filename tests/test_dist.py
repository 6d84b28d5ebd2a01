"""The distribution, as ``make dist`` builds it and a user installs it.

The sdist and the wheel are built once per run with ``python -m build`` (the
wheel from the sdist, as ``make dist`` does) and pass ``twine check``. The
wheel is then installed into a fresh venv without system site-packages, its
dependencies resolved by pip from the indexes it is configured with, and a
tiny app (``tests/wheel_app.py``) runs there, away from this checkout: login
and a protected route, ``py.typed``, ``openapi.json`` and the ``flask jwt``
entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run a command; on failure, show what it printed."""
    result = subprocess.run(  # noqa: S603 - fixed commands of our own
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
    )
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the built sdist and wheel."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, REPO)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (found,) = dist.glob("*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel and its dependencies."""
    root = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", root)
    # This checkout's pip installs into the new venv: no pip of its own needed.
    _run(sys.executable, "-m", "pip", "--python", root / "bin" / "python", "install", "-q", wheel)
    return root


def test_dist_passes_twine_check(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert sorted(f.suffix for f in files) == [".gz", ".whl"], files
    _run(sys.executable, "-m", "twine", "check", "--strict", *files)


def test_wheel_holds_the_package_data_and_entry_point(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = archive.read(entry_points).decode()
    assert {"flask_cocart_jwt/py.typed", "flask_cocart_jwt/openapi.json"} <= names
    assert "[flask.commands]\njwt = flask_cocart_jwt.cli:cli_group" in entry_text
    assert not [n for n in names if n.startswith(("tests/", "examples/", "docs/"))]


def test_sdist_holds_tests_docs_and_examples(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[-1] for name in archive.getnames()}
    for path in (
        "flask_cocart_jwt/openapi.json",
        "tests/conftest.py",
        "docs/quickstart.rst",
        "examples/shop.py",
        "Makefile",
    ):
        assert path in names, path
    assert not [n for n in names if n.startswith("docs/_build") or "__pycache__" in n]


def test_wheel_runs_an_app_in_a_fresh_venv(venv: Path, tmp_path: Path) -> None:
    script = tmp_path / "wheel_app.py"
    shutil.copy(REPO / "tests" / "wheel_app.py", script)
    output = _run(venv / "bin" / "python", "-I", script, tmp_path / "instance", cwd=tmp_path)
    report: dict[str, Any] = json.loads(output)
    # Imported from the venv, not from this checkout.
    assert Path(report["module"]).resolve().is_relative_to(venv.resolve()), report["module"]
    assert report["py_typed"] is True
    assert {"/login", "/refresh-token", "/revoke"} <= set(report["openapi_paths"])
    assert report["entry_point"] == "flask_cocart_jwt.cli:cli_group"
    assert report["entry_point_loads"] == "jwt"
    assert report["login"] == 200
    assert report["me"] == [200, {"user": "alice"}]
    assert report["anonymous"] == 401


def test_flask_jwt_command_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    """``flask jwt keygen`` works in the venv, without an app."""
    secret = _run(venv / "bin" / "flask", "jwt", "keygen", cwd=tmp_path).strip()
    assert len(secret) >= 64
    assert "\n" not in secret
