"""The apps the protected-route benchmarks compare, and what each is compared with.

Three groups, each a baseline and the cases measured against it:

- **documented setup** (the headline): what the README and the shop example
  recommend. The app has its own Flask-SQLAlchemy (SQLite) and a view that
  reads the identity, ``jsonify(ok=True, who=get_jwt_identity())``; this
  extension is ``CoCartJWT(app, db=db)`` with its defaults (rate limits on,
  the protected-view limit off), Flask-JWT-Extended is ``JWTManager(app)``
  with the same route and, for the blocklist case, the ``TokenBlocklist``
  model and ``token_in_blocklist_loader`` of its documentation. The baseline
  is the same app without authentication (its own Flask-SQLAlchemy included),
  so that an overhead is the cost of authentication alone.
  One more case, for information, has the memo of verified tokens off
  (``COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE=0``): what each request would
  cost if every request brought a token not seen before.
- **minimal**: an app with nothing else, a view that never reads the
  identity, ``CoCartJWT(app)`` on its embedded database: the figures of
  0.1, kept for comparison.
- **unprotected route**: the documented app's route without
  ``@jwt_required``, with and without the extension installed: what the
  extension costs the routes it does not protect.

Every builder returns the app and the headers of a request to ``GET /data``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify

SECRET = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
Builder = Callable[[], tuple[Flask, dict[str, str]]]
#: A header the size of a token, sent where no token is checked.
_DUMMY = {"Authorization": "Bearer " + "x" * 240}


# -- minimal -----------------------------------------------------------------------


def _bare() -> tuple[Flask, dict[str, str]]:
    app = Flask("bare")

    @app.get("/data")
    def data() -> Any:
        return jsonify(ok=True)

    # The same header as the other cases, so that only checking it counts.
    return app, dict(_DUMMY)


def _fje(blocklist: bool) -> tuple[Flask, dict[str, str]]:
    from flask_jwt_extended import JWTManager, create_access_token, jwt_required

    app = Flask("fje_db" if blocklist else "fje")
    app.config["JWT_SECRET_KEY"] = SECRET
    manager = JWTManager(app)
    if blocklist:
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{tempfile.mkdtemp()}/blocklist.sqlite3")
        meta = sa.MetaData()
        revoked = sa.Table("revoked", meta, sa.Column("jti", sa.String(64), primary_key=True))
        meta.create_all(engine)

        @manager.token_in_blocklist_loader
        def in_blocklist(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
            with engine.connect() as conn:
                query = sa.select(revoked.c.jti).where(revoked.c.jti == payload["jti"])
                return conn.execute(query).first() is not None

    @app.get("/data")
    @jwt_required()
    def data() -> Any:
        return jsonify(ok=True)

    with app.app_context():
        token = create_access_token("alice")
    return app, {"Authorization": f"Bearer {token}"}


def _ours(revocation_check: bool) -> tuple[Flask, dict[str, str]]:
    from flask_cocart_jwt import CoCartJWT, jwt_required

    app = Flask("ours_rev" if revocation_check else "ours", instance_path=tempfile.mkdtemp())
    app.config.update(
        COCART_JWT_SECRET_KEY=SECRET,
        COCART_JWT_REVOCATION_CHECK=revocation_check,
        COCART_JWT_RATELIMIT_ENABLED=False,
    )
    ext = CoCartJWT(app)

    @app.get("/data")
    @jwt_required
    def data() -> Any:
        return jsonify(ok=True)

    with app.test_request_context():
        pair = ext.issue_tokens("alice")
    return app, {"Authorization": f"Bearer {pair.access_token}"}


# -- the documented setup ----------------------------------------------------------


def _app_with_db(name: str) -> tuple[Flask, Any]:
    """An app with its own Flask-SQLAlchemy on an SQLite file, as users write it."""
    from flask_sqlalchemy import SQLAlchemy

    directory = tempfile.mkdtemp(prefix="cocart-bench-")
    app = Flask(name, instance_path=directory)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{directory}/app.sqlite3"
    return app, SQLAlchemy(app)


def _documented_bare() -> tuple[Flask, dict[str, str]]:
    app, _db = _app_with_db("documented_bare")

    @app.get("/data")
    def data() -> Any:
        return jsonify(ok=True, who="alice")

    return app, dict(_DUMMY)


def _documented_fje(blocklist: bool) -> tuple[Flask, dict[str, str]]:
    from flask_jwt_extended import (
        JWTManager,
        create_access_token,
        get_jwt_identity,
        jwt_required,
    )

    app, db = _app_with_db("documented_fje_db" if blocklist else "documented_fje")
    app.config["JWT_SECRET_KEY"] = SECRET
    manager = JWTManager(app)
    if blocklist:
        import sqlalchemy as sa

        # Flask-JWT-Extended's documented database blocklist.
        class TokenBlocklist(db.Model):  # type: ignore[name-defined,misc]
            id = sa.Column(sa.Integer, primary_key=True)
            jti = sa.Column(sa.String(36), nullable=False, index=True)
            created_at = sa.Column(sa.DateTime, nullable=False)

        @manager.token_in_blocklist_loader
        def in_blocklist(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
            jti = payload["jti"]
            return db.session.query(TokenBlocklist.id).filter_by(jti=jti).scalar() is not None

        with app.app_context():
            db.create_all()

    @app.get("/data")
    @jwt_required()
    def data() -> Any:
        return jsonify(ok=True, who=get_jwt_identity())

    with app.app_context():
        token = create_access_token("alice")
    return app, {"Authorization": f"Bearer {token}"}


def _documented_ours(revocation_check: bool, memo: bool = True) -> tuple[Flask, dict[str, str]]:
    from flask_cocart_jwt import CoCartJWT, get_jwt_identity, jwt_required

    name = "documented_ours_rev" if revocation_check else "documented_ours"
    app, db = _app_with_db(name if memo else f"{name}_full")
    app.config.update(
        COCART_JWT_SECRET_KEY=SECRET,
        COCART_JWT_REVOCATION_CHECK=revocation_check,
        # 0: every request verifies its token in full (signature, parsing, claims).
        COCART_JWT_VERIFIED_TOKEN_CACHE_SIZE=1024 if memo else 0,
    )
    cocart_jwt = CoCartJWT(app, db=db)
    with app.app_context():
        db.create_all()

    @app.get("/data")
    @jwt_required
    def data() -> Any:
        return jsonify(ok=True, who=get_jwt_identity())

    with app.test_request_context():
        pair = cocart_jwt.issue_tokens("alice")
    return app, {"Authorization": f"Bearer {pair.access_token}"}


# -- unprotected routes ------------------------------------------------------------


def _unprotected(installed: bool) -> tuple[Flask, dict[str, str]]:
    app, db = _app_with_db("unprotected_ext" if installed else "unprotected")
    if installed:
        from flask_cocart_jwt import CoCartJWT

        app.config["COCART_JWT_SECRET_KEY"] = SECRET
        CoCartJWT(app, db=db)
        with app.app_context():
            db.create_all()

    @app.get("/data")
    def data() -> Any:
        return jsonify(ok=True, who="alice")

    return app, dict(_DUMMY)


BARE = "bare Flask"
FJE = "Flask-JWT-Extended"
FJE_DB = "Flask-JWT-Extended + DB blocklist"
OURS = "CoCart-JWT, revocation check off"
OURS_REV = "CoCart-JWT, revocation check on"
DOC_BARE = "documented: bare Flask + Flask-SQLAlchemy"
DOC_FJE = "documented: Flask-JWT-Extended"
DOC_FJE_DB = "documented: Flask-JWT-Extended + DB blocklist"
DOC_OURS = "documented: CoCart-JWT(db=db), revocation check off"
DOC_OURS_REV = "documented: CoCart-JWT(db=db), revocation check on"
#: For information: each request's token verified in full, as on its first use.
DOC_OURS_FULL = "documented: CoCart-JWT(db=db), memo of verified tokens off"
OPEN_WITHOUT = "unprotected route, app without the extension"
OPEN_WITH = "unprotected route, app with CoCart-JWT(db=db)"

CASES: dict[str, Builder] = {
    DOC_BARE: _documented_bare,
    DOC_FJE: lambda: _documented_fje(False),
    DOC_FJE_DB: lambda: _documented_fje(True),
    DOC_OURS: lambda: _documented_ours(False),
    DOC_OURS_REV: lambda: _documented_ours(True),
    DOC_OURS_FULL: lambda: _documented_ours(False, memo=False),
    BARE: _bare,
    FJE: lambda: _fje(False),
    FJE_DB: lambda: _fje(True),
    OURS: lambda: _ours(False),
    OURS_REV: lambda: _ours(True),
    OPEN_WITHOUT: lambda: _unprotected(False),
    OPEN_WITH: lambda: _unprotected(True),
}

#: The case each case's overhead is measured against.
BASELINES: dict[str, str] = {
    **dict.fromkeys(
        (DOC_BARE, DOC_FJE, DOC_FJE_DB, DOC_OURS, DOC_OURS_REV, DOC_OURS_FULL), DOC_BARE
    ),
    **dict.fromkeys((BARE, FJE, FJE_DB, OURS, OURS_REV), BARE),
    **dict.fromkeys((OPEN_WITHOUT, OPEN_WITH), OPEN_WITHOUT),
}


def prepare(name: str) -> Callable[[], Any]:
    """Build case ``name`` and return one request through its test client.

    The first request is checked (200) so that a broken case fails loudly
    instead of timing an error page.
    """
    app, headers = CASES[name]()
    client = app.test_client()
    response = client.get("/data", headers=headers)
    assert response.status_code == 200, (name, response.get_data())
    return lambda: client.get("/data", headers=headers)
