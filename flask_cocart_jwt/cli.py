"""The ``flask jwt`` command group: keys, tokens and sessions from the shell.

``init_app`` registers :data:`cli_group` on the app, so every command runs
inside the app's context with its validated settings::

    $ flask jwt keygen --algorithm ES256
    $ flask jwt issue alice
    $ flask jwt decode eyJhbGciOi...
    $ flask jwt sessions alice --page 2
    $ flask jwt revoke --user alice --yes
    $ flask jwt purge

Every failure is a one-line ``Error: ...`` on stderr with a non-zero exit
code (1 for a refused operation, 2 for a usage mistake), never a traceback.
Only ``keygen`` prints key material, and ``issue`` the tokens it was asked for.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import current_app, has_app_context
from flask.cli import AppGroup, ScriptInfo

from .clients import Client
from .exceptions import AuthError, CoCartJWTError, UserNotFound
from .keys import EC_ALGORITHMS, HMAC_ALGORITHMS, RSA_ALGORITHMS, SUPPORTED_ALGORITHMS
from .service import Service, service_of

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

P = ParamSpec("P")
R = TypeVar("R")

#: RSA keys made by ``keygen`` (RFC 7518 asks for 2048 bits at least; 3072
#: matches 128-bit security).
RSA_KEY_BITS = 3072
_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
_MAX_IDENTITY_CHARS = 255
_USER_AGENT_COLUMN = 60

#: The ``flask jwt`` command group, registered on the app by ``init_app``.
cli_group = AppGroup("jwt", help="Manage Flask-CoCart-JWT keys, tokens and sessions.")


def _friendly_errors(f: Callable[P, R]) -> Callable[P, R]:
    """Turn the extension's exceptions into a clean ``Error:`` line, exit code 1."""

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return f(*args, **kwargs)
        except AuthError as exc:
            raise click.ClickException(f"{exc.error}: {exc.message}") from None
        except CoCartJWTError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _service() -> Service:
    """The service of the current app; a clean error if the extension is not on it."""
    try:
        return service_of(current_app._get_current_object())  # type: ignore[attr-defined]
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


def _printable(text: str | None, width: int | None = None) -> str:
    """``text`` safe for a terminal: control characters become ``?``."""
    if not text:
        return "-"
    text = "".join(c if c.isprintable() else "?" for c in text)
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def _iso(timestamp: int) -> str:
    """Unix seconds as an ISO 8601 UTC time."""
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with left-aligned columns."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, ["-" * w for w in widths], *rows)
    ]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    """``"1 session"``, ``"2 sessions"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=True)


# -- keygen ----------------------------------------------------------------


def generate_private_key(algorithm: str) -> PrivateKeyTypes:
    """A new private key for an asymmetric ``algorithm``.

    RSA keys (RS*, PS*) have :data:`RSA_KEY_BITS` bits, EC keys the curve of
    their algorithm (ES512 uses P-521) and EdDSA keys are Ed25519.

    :raises ValueError: ``algorithm`` is an HMAC or unknown algorithm.
    """
    if algorithm in RSA_ALGORITHMS:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if algorithm in EC_ALGORITHMS:
        return ec.generate_private_key(_CURVES[algorithm]())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"{algorithm} has no key pair")


def _default_algorithm() -> str:
    """The app's ``COCART_JWT_ALGORITHM`` if the app loads, else ``HS256``.

    ``keygen`` runs without an app context, so that it works before the app
    has a key (``init_app`` refuses to start without one).
    """
    if has_app_context():
        configured = current_app.config.get("COCART_JWT_ALGORITHM")
    else:
        info = click.get_current_context().find_object(ScriptInfo)
        try:
            configured = info.load_app().config.get("COCART_JWT_ALGORITHM") if info else None
        except Exception:  # an app that cannot start yet: it may lack this very key
            configured = None
    return configured if configured in SUPPORTED_ALGORITHMS else "HS256"


@cli_group.command("keygen", with_appcontext=False)
@click.option(
    "--algorithm",
    type=click.Choice(sorted(SUPPORTED_ALGORITHMS)),
    default=None,
    help="The algorithm to make a key for. [default: the app's COCART_JWT_ALGORITHM]",
)
def keygen_command(algorithm: str | None) -> None:
    """Print a new secret (HS*) or PEM key pair (RS*, PS*, ES*, EdDSA).

    For HS* the secret alone goes to stdout, ready for COCART_JWT_SECRET_KEY.
    Keep the secret or private key out of version control.
    """
    algorithm = algorithm or _default_algorithm()
    if algorithm in HMAC_ALGORITHMS:
        click.echo(f"# COCART_JWT_SECRET_KEY for {algorithm}: keep it secret.", err=True)
        click.echo(secrets.token_urlsafe(64))
        return
    private = generate_private_key(algorithm)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    click.echo(f'# COCART_JWT_ALGORITHM = "{algorithm}"')
    click.echo("# COCART_JWT_PRIVATE_KEY (PKCS#8): keep it secret, never commit it.")
    click.echo(private_pem, nl=False)
    click.echo("# COCART_JWT_PUBLIC_KEY (SubjectPublicKeyInfo): safe to share.")
    click.echo(public_pem, nl=False)


# -- issue -----------------------------------------------------------------


class _CommandLineUser:
    """The user passed to the callbacks by ``flask jwt issue`` without a user loader."""

    def __init__(self, identity: str) -> None:
        self.id = identity

    def __str__(self) -> str:
        return self.id


@cli_group.command("issue")
@click.argument("identity")
@click.option("--fresh", is_flag=True, help="Mark the access token fresh, as if from a login.")
@_friendly_errors
def issue_command(identity: str, fresh: bool) -> None:
    """Open a session for IDENTITY and print its token pair as JSON.

    With a user loader, IDENTITY must name an existing user. The tokens are
    credentials: do not leave them in shell history or logs.
    """
    if not identity or len(identity) > _MAX_IDENTITY_CHARS:
        raise click.BadParameter(
            f"must be 1 to {_MAX_IDENTITY_CHARS} characters.", param_hint="'IDENTITY'"
        )
    service = _service()
    user: Any = _CommandLineUser(identity)
    if service.callbacks.user_loader_callback is not None:
        try:
            user = service.load_user(identity)
        except UserNotFound:
            raise click.ClickException(
                f"user_not_found: the user loader found no user {identity!r}."
            ) from None
    try:
        issued_as = service.identity_of(user)
    except Exception as exc:
        raise click.ClickException(f"the user identity loader failed: {exc!r}") from None
    if issued_as != identity:
        raise click.ClickException(
            f"the user identity loader maps this user to {issued_as!r}, not {identity!r}."
        )
    try:
        pair = service.issue(user, fresh=fresh, client=Client())
    except CoCartJWTError:
        raise
    except Exception as exc:
        raise click.ClickException(f"could not issue tokens: {exc!r}") from None
    click.echo(_dumps(pair.to_dict()))


# -- decode ----------------------------------------------------------------


def _b64_json(segment: str) -> dict[str, Any]:
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    obj = json.loads(data.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of ``token``, without any check."""
    parts = token.split(".")
    if len(parts) != 3:
        raise click.ClickException("invalid_token: not a compact JWS (header.payload.signature).")
    try:
        return _b64_json(parts[0]), _b64_json(parts[1])
    except (ValueError, RecursionError):  # includes binascii and Unicode errors
        raise click.ClickException(
            "invalid_token: the header or claims are not base64url-encoded JSON objects."
        ) from None


@cli_group.command("decode")
@click.argument("token")
@click.option(
    "--no-verify",
    is_flag=True,
    help="Only decode: skip the signature, expiry and revocation checks.",
)
@_friendly_errors
def decode_command(token: str, no_verify: bool) -> None:
    """Verify an access TOKEN and print its header and claims as JSON.

    The checks are those of a protected view: signature with the configured
    keys, type, times, issuer, audience and revocation.
    """
    service = _service()
    token = token.strip()
    if len(token) > service.settings.max_token_bytes:
        raise click.ClickException(
            "invalid_token: the token is longer than COCART_JWT_MAX_TOKEN_BYTES."
        )
    if no_verify:
        click.secho(
            "WARNING: signature NOT verified; expiry and revocation NOT checked. "
            "Do not trust this output.",
            err=True,
            fg="red",
            bold=True,
        )
        header, claims = _unverified(token)
    else:
        claims = service.verify(token)
        header, _ = _unverified(token)
    click.echo(_dumps({"header": header, "claims": claims}))


# -- sessions and revocation ------------------------------------------------


@cli_group.command("sessions")
@click.argument("identity")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(min=1), default=20, show_default=True)
@_friendly_errors
def sessions_command(identity: str, page: int, per_page: int) -> None:
    """List the live sessions of IDENTITY, newest first (times in UTC)."""
    sessions = _service().list_sessions(identity)
    if not sessions:
        click.echo(f"No live sessions for {identity!r}.")
        return
    pages = math.ceil(len(sessions) / per_page)
    if page > pages:
        raise click.BadParameter(f"there are only {pages} page(s).", param_hint="'--page'")
    shown = sessions[(page - 1) * per_page : page * per_page]
    rows = [
        (
            s.id,
            _iso(s.created_at),
            _iso(s.last_used_at),
            _iso(s.expires_at),
            _printable(s.ip),
            _printable(s.user_agent, _USER_AGENT_COLUMN),
        )
        for s in shown
    ]
    headers = ("ID", "CREATED", "LAST USED", "EXPIRES", "IP", "USER AGENT")
    click.echo(_table(headers, rows))
    click.echo(f"Page {page} of {pages} ({_count(len(sessions), 'live session')}).")


@cli_group.command("revoke")
@click.option("--session", "session_id", metavar="ID", help="Revoke this session.")
@click.option("--user", "identity", metavar="IDENTITY", help="Revoke every session of a user.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_friendly_errors
def revoke_command(session_id: str | None, identity: str | None, yes: bool) -> None:
    """Revoke one session (--session) or every session of a user (--user).

    The refresh tokens stop working at once and the access tokens at the
    next revocation check.
    """
    if (session_id is None) == (identity is None):
        raise click.UsageError("Pass exactly one of --session ID or --user IDENTITY.")
    service = _service()
    if session_id is not None:
        if not yes:
            click.confirm(f"Revoke session {session_id!r}?", abort=True, err=True)
        if not service.revoke_session(session_id, "cli"):
            raise click.ClickException(f"No live session with id {session_id!r}.")
        click.echo(f"Revoked session {session_id!r}.")
        return
    assert identity is not None
    live = len(service.list_sessions(identity))
    if not live:
        click.echo(f"No live sessions for {identity!r}; nothing to revoke.")
        return
    if not yes:
        click.confirm(
            f"Revoke {_count(live, 'live session')} of {identity!r}?", abort=True, err=True
        )
    count = service.revoke_user(identity, "cli")
    click.echo(f"Revoked {_count(count, 'session')} of {identity!r}.")


@cli_group.command("purge")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Sessions deleted per transaction.",
)
@_friendly_errors
def purge_command(batch_size: int) -> None:
    """Delete sessions past their absolute expiry with their refresh tokens.

    Consumed refresh tokens (tombstones) go with their session; those of live
    sessions are kept so that a replay is still detected. Run it from cron.
    """
    service = _service()
    expected = service.store.count_expired(now=int(time.time()))
    purged = 0
    with click.progressbar(
        length=expected, label="Purging expired sessions", file=sys.stderr
    ) as bar:
        for deleted in service.purge_expired_batches(batch_size=batch_size):
            purged += deleted
            bar.update(deleted)
    click.echo(f"Purged {_count(purged, 'expired session')}.")
