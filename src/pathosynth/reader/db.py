"""Database URL -> engine, with the schema brought up to date by Alembic before anything runs.

A SQLite file is the default (one admin, a handful of readers); PostgreSQL
(`postgresql+psycopg://user:pass@host/db`) when a study is shared by many readers at once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import sessionmaker

from pathosynth.errors import UserError

MIGRATIONS = Path(__file__).parent / "migrations"


def default_url(path: str | Path = "pathosynth-studies.sqlite") -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UserError(f"--db {url!r} is not a database URL; give sqlite:///FILE or "
                        "postgresql+psycopg://USER:PASSWORD@HOST/DB") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).parent.is_dir():
            raise UserError(f"{database}: its folder does not exist; create it or give another --db path")
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise UserError(f"--db {url!r}: only SQLite and PostgreSQL are supported")
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets readers read while an answer is written; FULL sync so an acknowledged answer
    # survives the server being killed; foreign keys are off by default in SQLite
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration not yet applied; an existing study keeps all its rows."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise UserError(f"cannot reach the database {engine.url.render_as_string(hide_password=True)} "
                        f"({exc.orig}); check --db and that the server is running") from exc


def open_database(url: str):
    """The engine and a session factory for `url`, migrated to the newest schema."""
    engine = make_engine(url)
    upgrade(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
