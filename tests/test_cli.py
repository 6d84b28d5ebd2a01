"""The ``flask jwt`` command group: keygen, issue, decode, sessions, revoke, purge."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask

from flask_cocart_jwt import CoCartJWT
from flask_cocart_jwt.cli import RSA_KEY_BITS, generate_private_key
from flask_cocart_jwt.service import Service as AppState
from tests.conftest import User

AppFactory = Callable[..., Flask]
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\n.+?\n-----END \1-----\n", re.DOTALL)


def state_of(app: Flask) -> AppState:
    """The extension's state for ``app``."""
    state: AppState = app.extensions["cocart_jwt"].get_service(app)
    return state


@pytest.fixture
def build(make_app: AppFactory) -> Iterator[AppFactory]:
    """``make_app`` with rate limits off; pollers and pools closed afterwards."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        config.setdefault("COCART_JWT_RATELIMIT_ENABLED", False)
        app = make_app(**config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        state = state_of(app)
        if state.revocations is not None:
            state.revocations.close()
        state.store.close()


@pytest.fixture
def cli_app(build: AppFactory) -> Flask:
    """An app on the embedded SQLite default."""
    return build()


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    """Invoke ``flask jwt ARGS`` on ``app``."""
    result: Result = app.test_cli_runner().invoke(args=["jwt", *args], input=input)
    return result


def assert_fails(result: Result, exit_code: int, *fragments: str) -> None:
    """A clean failure: the exit code, the message on stderr, no traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def issue(app: Flask, identity: str = "alice", *args: str) -> dict[str, Any]:
    """``flask jwt issue IDENTITY`` and its parsed token pair."""
    result = run(app, "issue", identity, *args)
    assert result.exit_code == 0, result.output
    pair: dict[str, Any] = json.loads(result.stdout)
    return pair


def decode(app: Flask, token: str, *args: str) -> Result:
    """``flask jwt decode TOKEN``."""
    return run(app, "decode", token, *args)


def claims_of(app: Flask, token: str) -> dict[str, Any]:
    """The verified claims of ``token``, through the CLI."""
    result = decode(app, token)
    assert result.exit_code == 0, result.output
    claims: dict[str, Any] = json.loads(result.stdout)["claims"]
    return claims


def test_group_is_registered(cli_app: Flask) -> None:
    result = run(cli_app, "--help")
    assert result.exit_code == 0
    for command in ("keygen", "issue", "decode", "sessions", "revoke", "purge"):
        assert command in result.output


# -- keygen -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_keygen_secret(cli_app: Flask, build: AppFactory, algorithm: str) -> None:
    result = run(cli_app, "keygen", "--algorithm", algorithm)
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert "\n" not in secret
    assert len(secret) >= 64
    assert "COCART_JWT_SECRET_KEY" in result.stderr
    assert secret != run(cli_app, "keygen", "--algorithm", algorithm).stdout.strip()
    app = build(COCART_JWT_ALGORITHM=algorithm, COCART_JWT_SECRET_KEY=secret)
    pair = issue(app)
    assert json.loads(decode(app, pair["access_token"]).stdout)["header"]["alg"] == algorithm


KEY_CHECKS: dict[str, Callable[[Any], bool]] = {
    "RS256": lambda k: isinstance(k, rsa.RSAPrivateKey) and k.key_size == RSA_KEY_BITS,
    "PS512": lambda k: isinstance(k, rsa.RSAPrivateKey) and k.key_size == RSA_KEY_BITS,
    "ES256": lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp256r1",
    "ES384": lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp384r1",
    "ES512": lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp521r1",
    "EdDSA": lambda k: isinstance(k, ed25519.Ed25519PrivateKey),
}


@pytest.mark.parametrize("algorithm", sorted(KEY_CHECKS))
def test_keygen_key_pair(cli_app: Flask, build: AppFactory, algorithm: str) -> None:
    result = run(cli_app, "keygen", "--algorithm", algorithm)
    assert result.exit_code == 0, result.output
    assert f'COCART_JWT_ALGORITHM = "{algorithm}"' in result.stdout
    assert "# COCART_JWT_PRIVATE_KEY" in result.stdout
    assert "# COCART_JWT_PUBLIC_KEY" in result.stdout
    blocks = {m.group(1): m.group(0) for m in PEM_BLOCK.finditer(result.stdout)}
    assert set(blocks) == {"PRIVATE KEY", "PUBLIC KEY"}  # PKCS#8 and SubjectPublicKeyInfo
    private = serialization.load_pem_private_key(blocks["PRIVATE KEY"].encode(), password=None)
    public = serialization.load_pem_public_key(blocks["PUBLIC KEY"].encode())
    assert KEY_CHECKS[algorithm](private)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public.public_bytes(*spki) == private.public_key().public_bytes(*spki)

    app = build(
        COCART_JWT_ALGORITHM=algorithm,
        COCART_JWT_PRIVATE_KEY=blocks["PRIVATE KEY"],
        COCART_JWT_PUBLIC_KEY=blocks["PUBLIC KEY"],
    )
    header = json.loads(decode(app, issue(app)["access_token"]).stdout)["header"]
    assert header["alg"] == algorithm


def test_keygen_defaults_to_the_apps_algorithm(build: AppFactory) -> None:
    pem = generate_private_key("ES384").private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    app = build(COCART_JWT_ALGORITHM="ES384", COCART_JWT_PRIVATE_KEY=pem)
    assert 'COCART_JWT_ALGORITHM = "ES384"' in run(app, "keygen").stdout
    hs_app = build()
    result = run(hs_app, "keygen")
    assert "HS256" in result.stderr
    assert "PRIVATE KEY" not in result.output


def test_keygen_unknown_algorithm(cli_app: Flask) -> None:
    assert_fails(run(cli_app, "keygen", "--algorithm", "none"), 2, "'none' is not one of")


def test_generate_private_key_refuses_hmac() -> None:
    with pytest.raises(ValueError, match="HS256"):
        generate_private_key("HS256")


# -- issue ------------------------------------------------------------------


def test_issue(cli_app: Flask) -> None:
    pair = issue(cli_app, "alice")
    assert pair["token_type"] == "Bearer"
    assert pair["refresh_token"].startswith("rt_")
    assert pair["expires_in"] == 900
    claims = claims_of(cli_app, pair["access_token"])
    assert claims["sub"] == "alice"
    assert claims["sid"] == pair["session_id"]
    assert claims["fresh"] is False
    assert claims_of(cli_app, issue(cli_app, "alice", "--fresh")["access_token"])["fresh"] is True
    # The tokens work over HTTP too.
    response = cli_app.test_client().get(
        "/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert response.status_code == 200
    assert response.json["identity"] == "alice"


def test_issue_with_user_loader(build: AppFactory) -> None:
    ext = CoCartJWT()
    users = {"7": User("7")}
    ext.user_loader(users.get)
    seen: list[Any] = []

    @ext.additional_claims_loader
    def claims(user: Any) -> dict[str, Any]:
        seen.append(user)
        return {"role": "admin"}

    app = build(extension=ext)
    claims_ = claims_of(app, issue(app, "7")["access_token"])
    assert claims_["sub"] == "7"
    assert claims_["role"] == "admin"
    assert seen == [users["7"]]
    assert_fails(run(app, "issue", "8"), 1, "user_not_found", "'8'")


def test_issue_identity_must_survive_the_identity_loader(build: AppFactory) -> None:
    ext = CoCartJWT()
    ext.user_identity_loader(lambda user: f"user:{user.id}")
    app = build(extension=ext)
    assert_fails(run(app, "issue", "alice"), 1, "'user:alice', not 'alice'")
    ext.user_identity_loader(lambda user: user.email)
    assert_fails(run(app, "issue", "alice"), 1, "identity loader failed", "AttributeError")
    assert run(app, "sessions", "alice").stdout.startswith("No live sessions")


def test_issue_user_loader_database_down(build: AppFactory) -> None:
    ext = CoCartJWT()

    @ext.user_loader
    def load(identity: str) -> Any:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    app = build(extension=ext)
    assert_fails(run(app, "issue", "alice"), 1, "service_unavailable")


@pytest.mark.parametrize("identity", ["", "x" * 256])
def test_issue_bad_identity(cli_app: Flask, identity: str) -> None:
    assert_fails(run(cli_app, "issue", identity), 2, "IDENTITY")


# -- decode -----------------------------------------------------------------


def test_decode(cli_app: Flask) -> None:
    pair = issue(cli_app)
    result = decode(cli_app, f"  {pair['access_token']}\n")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["header"]["typ"] == "at+jwt"
    assert body["header"]["alg"] == "HS256"
    assert body["claims"]["sid"] == pair["session_id"]
    assert result.stderr == ""


def test_decode_expired(cli_app: Flask) -> None:
    with time_machine.travel(NOW, tick=False):
        token = issue(cli_app)["access_token"]
    with time_machine.travel(NOW + timedelta(minutes=15), tick=False):
        assert_fails(decode(cli_app, token), 1, "token_expired", "has expired")
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        result = decode(cli_app, token, "--no-verify")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["claims"]["sub"] == "alice"


def test_decode_forged(cli_app: Flask, build: AppFactory) -> None:
    other = build(COCART_JWT_SECRET_KEY="another-secret-9876543210-zyxwvutsrqponmlkjihg")
    forged = issue(other)["access_token"]
    assert_fails(decode(cli_app, forged), 1, "invalid_token")
    header, _payload, signature = issue(cli_app)["access_token"].split(".")
    tampered = f"{header}.{forged.split('.')[1]}.{signature}"
    assert_fails(decode(cli_app, tampered), 1, "invalid_token")
    result = decode(cli_app, tampered, "--no-verify")
    assert result.exit_code == 0
    assert "WARNING: signature NOT verified" in result.stderr
    assert json.loads(result.stdout)["claims"]["sub"] == "alice"


def test_decode_revoked(cli_app: Flask) -> None:
    pair = issue(cli_app)
    assert run(cli_app, "revoke", "--session", pair["session_id"], "--yes").exit_code == 0
    assert_fails(decode(cli_app, pair["access_token"]), 1, "session_revoked")


GARBAGE = [
    "",
    "garbage",
    "a.b",
    "a.b.c.d",
    "a.b.c",
    "!!!.???.***",
    "é.é.é",
    "eyJhbGciOiJIUzI1NiJ9.WzFd.c2ln",  # claims are a JSON array
    "eyJhbGciOiJIUzI1NiJ9.__8.c2ln",  # claims are not UTF-8
    "W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW10.e30.c2ln",
    "x" * 10_000,
]


@pytest.mark.parametrize("token", GARBAGE)
@pytest.mark.parametrize("verify", [True, False])
def test_decode_garbage(cli_app: Flask, token: str, verify: bool) -> None:
    result = decode(cli_app, token, *([] if verify else ["--no-verify"]))
    assert_fails(result, 1, "invalid_token")
    assert result.stdout == ""


def test_decode_deeply_nested(cli_app: Flask) -> None:
    nested = base64.urlsafe_b64encode(b"[" * 6000).decode().rstrip("=")
    token = f"eyJhbGciOiJIUzI1NiJ9.{nested}.c2ln"
    assert len(token) < 8192  # under the size cap: the JSON parser sees it
    assert_fails(decode(cli_app, token), 1, "invalid_token")
    assert_fails(decode(cli_app, token, "--no-verify"), 1, "invalid_token")


# -- sessions ---------------------------------------------------------------


def open_session(app: Flask, identity: str = "alice", **environ: str) -> str:
    """Open a session as if from a request with ``environ``; return its id."""
    with app.test_request_context(environ_base=environ):
        pair = app.extensions["cocart_jwt"].issue_tokens(User(identity))
    session_id: str = pair.session_id
    return session_id


def test_sessions(cli_app: Flask) -> None:
    with time_machine.travel(NOW, tick=False):
        first = open_session(
            cli_app, REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="curl/8.0 \x1b[31mred\x07"
        )
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        second = open_session(cli_app, HTTP_USER_AGENT="Mozilla/5.0 " + "x" * 200)
        open_session(cli_app, "bob")
        assert run(cli_app, "sessions", "bob").stdout.endswith("(1 live session).\n")
        result = run(cli_app, "sessions", "alice")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "LAST", "USED", "EXPIRES", "IP", "USER", "AGENT"]
    assert lines[2].startswith(second)
    assert lines[3].startswith(first)
    assert "2030-01-02T03:04:05Z" in lines[3]
    assert "2030-04-02T03:04:05Z" in lines[3]
    assert "203.0.113.9" in lines[3]
    assert "curl/8.0 ?[31mred?" in lines[3]
    assert "\x1b" not in result.stdout
    assert "x" * 100 not in result.stdout
    assert lines[-1] == "Page 1 of 1 (2 live sessions)."


def test_sessions_pages(cli_app: Flask) -> None:
    ids = [open_session(cli_app) for _ in range(5)]
    seen: list[str] = []
    for page in (1, 2, 3):
        result = run(cli_app, "sessions", "alice", "--page", str(page), "--per-page", "2")
        assert result.exit_code == 0
        assert result.stdout.splitlines()[-1] == f"Page {page} of 3 (5 live sessions)."
        seen += [line.split()[0] for line in result.stdout.splitlines()[2:-1]]
    assert sorted(seen) == sorted(ids)
    assert_fails(run(cli_app, "sessions", "alice", "--page", "4", "--per-page", "2"), 2, "3 page")


@pytest.mark.parametrize("option", ["--page", "--per-page"])
@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_sessions_bad_paging(cli_app: Flask, option: str, value: str) -> None:
    assert_fails(run(cli_app, "sessions", "alice", option, value), 2, option)


def test_sessions_none(cli_app: Flask) -> None:
    result = run(cli_app, "sessions", "nobody")
    assert result.exit_code == 0
    assert result.stdout == "No live sessions for 'nobody'.\n"


def test_sessions_database_down(build: AppFactory) -> None:
    app = build(COCART_JWT_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert_fails(run(app, "sessions", "alice"), 1, "service_unavailable")


# -- revoke -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [[], ["--yes"], ["--session", "s", "--user", "alice"], ["--session", "s", "--user", ""]]
)
def test_revoke_needs_exactly_one_target(cli_app: Flask, args: list[str]) -> None:
    assert_fails(run(cli_app, "revoke", *args), 2, "exactly one of --session ID or --user")


def test_revoke_session(cli_app: Flask) -> None:
    kept, target = open_session(cli_app), open_session(cli_app)
    declined = run(cli_app, "revoke", "--session", target, input="n\n")
    assert_fails(declined, 1, f"Revoke session '{target}'?", "Aborted")
    assert target in run(cli_app, "sessions", "alice").stdout
    accepted = run(cli_app, "revoke", "--session", target, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout == f"Revoked session '{target}'.\n"
    listing = run(cli_app, "sessions", "alice").stdout
    assert target not in listing
    assert kept in listing
    # Already revoked, or unknown: exit code 1.
    assert_fails(run(cli_app, "revoke", "--session", target, "--yes"), 1, "No live session")
    assert_fails(run(cli_app, "revoke", "--session", "nope", "--yes"), 1, "'nope'")


def test_revoke_user(cli_app: Flask) -> None:
    tokens = [issue(cli_app)["access_token"] for _ in range(2)]
    bob = issue(cli_app, "bob")["access_token"]
    assert_fails(run(cli_app, "revoke", "--user", "alice", input="no\n"), 1, "Aborted")
    assert "Revoke 2 live sessions of 'alice'?" in run(cli_app, "revoke", "--user", "alice").stderr
    result = run(cli_app, "revoke", "--user", "alice", input="y\n")
    assert result.exit_code == 0
    assert result.stdout == "Revoked 2 sessions of 'alice'.\n"
    for token in tokens:
        assert_fails(decode(cli_app, token), 1, "session_revoked")
    assert decode(cli_app, bob).exit_code == 0
    again = run(cli_app, "revoke", "--user", "alice")
    assert again.exit_code == 0
    assert "nothing to revoke" in again.stdout


# -- purge ------------------------------------------------------------------


def row_counts(app: Flask) -> tuple[int, int]:
    """The number of session rows and refresh-token rows."""
    tables = state_of(app).store.tables
    with state_of(app).store.read() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(tables.sessions)).scalar_one(),
            conn.execute(
                sa.select(sa.func.count()).select_from(tables.refresh_tokens)
            ).scalar_one(),
        )


def test_purge(build: AppFactory, database_uri: str) -> None:
    app = build(COCART_JWT_DATABASE_URI=database_uri)
    client = app.test_client()
    with time_machine.travel(NOW, tick=False):
        old = [issue(app)["refresh_token"] for _ in range(3)]
        # A rotation leaves a consumed token (tombstone) behind.
        response = client.post("/auth/refresh-token", json={"refresh_token": old[0]})
        assert response.status_code == 200
    with time_machine.travel(NOW + timedelta(days=89), tick=False):
        live = issue(app)["refresh_token"]
        assert client.post("/auth/refresh-token", json={"refresh_token": live}).status_code == 200
    assert row_counts(app) == (4, 6)
    with time_machine.travel(NOW + timedelta(days=90), tick=False):
        result = run(app, "purge", "--batch-size", "2")
        assert result.exit_code == 0, result.output
        assert result.stdout == "Purged 3 expired sessions.\n"
        assert "Purging expired sessions" in result.stderr
        assert row_counts(app) == (1, 2)  # the live session keeps its tombstone
        replay = client.post("/auth/refresh-token", json={"refresh_token": live})
        assert replay.json["error"] == "refresh_token_reused"
        assert run(app, "purge").stdout == "Purged 0 expired sessions.\n"
    with time_machine.travel(NOW + timedelta(days=179), tick=False):
        assert run(app, "purge").stdout == "Purged 1 expired session.\n"
    assert row_counts(app) == (0, 0)


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_purge_bad_batch_size(cli_app: Flask, value: str) -> None:
    assert_fails(run(cli_app, "purge", "--batch-size", value), 2, "--batch-size")


def test_keygen_works_before_the_app_can_start() -> None:
    """``init_app`` refuses an app without a key, so ``keygen`` must not need one."""
    from click.testing import CliRunner
    from flask.cli import FlaskGroup

    from flask_cocart_jwt import ConfigurationError
    from flask_cocart_jwt.cli import cli_group

    def create_app() -> Flask:
        raise ConfigurationError("COCART_JWT_SECRET_KEY is required for HS256.")

    group = FlaskGroup(create_app=create_app, add_default_commands=False, load_dotenv=False)
    group.add_command(cli_group)
    result = CliRunner().invoke(group, ["jwt", "keygen"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert len(secret) >= 64
