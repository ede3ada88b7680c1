"""`pathosynth serve` and `pathosynth admin`: the reader-study web app from the command line."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pathosynth.cli_types import COUNT
from pathosynth.errors import UserError

DB_HELP = ("Database URL: a SQLite file (default) or postgresql+psycopg://USER:PASSWORD@HOST/DB for a study "
           "shared by many readers. The schema is migrated on start; studies are never dropped.")


def _default_db() -> str:
    from pathosynth.reader.db import default_url

    return default_url()


def load_maker(path: str):
    """Teaching cases come from a run or a pool; torch is imported only when one is first used."""
    from pathosynth.runtime import configure_torch_threads
    from pathosynth.generate.teaching import load_maker as load

    configure_torch_threads()
    return load(path)


@click.command()
@click.option("--db", "database", default=None, help=DB_HELP + "  [default: sqlite:///./pathosynth-studies.sqlite]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 to let other machines in (put HTTPS in front of it).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folders an admin names (datasets, runs, pools) must lie inside this one.")
@click.option("--cases-per-minute", type=COUNT, default=6, show_default=True,
              help="How many teaching cases one trainee may ask for per minute.")
def serve(database, host, port, data_root, cases_per_minute):
    """Start the reader-study app: Visual Turing Tests, teaching cases on demand, questionnaires.

    Create an admin first with `pathosynth admin NAME`, then open http://HOST:PORT/admin.
    """
    import uvicorn

    from pathosynth.reader.app import Limits, create_app

    if not data_root.is_dir():
        raise UserError(f"{data_root}: --data-root must be an existing folder")
    app = create_app(database or _default_db(), load_maker=load_maker, data_root=data_root,
                     limits=Limits(per_minute=cases_per_minute))
    click.echo(f"pathosynth reader app on http://{host}:{port}/admin (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


@click.command()
@click.argument("username")
@click.option("--db", "database", default=None, help=DB_HELP)
@click.option("--reset", is_flag=True, help="Set a new password for an existing admin.")
def admin(username, database, reset):
    """Create the admin USERNAME of the reader app (or --reset its password).

    The password is read from PATHOSYNTH_ADMIN_PASSWORD when set, else asked for twice.
    """
    from pathosynth.reader.db import open_database
    from pathosynth.reader.studies import check_admin_credentials, create_admin, reset_password

    password = os.environ.get("PATHOSYNTH_ADMIN_PASSWORD") or click.prompt(
        "Password (at least 8 characters)", hide_input=True, confirmation_prompt=True)
    check_admin_credentials(username, password)  # before the database file is made
    _engine, sessions = open_database(database or _default_db())
    with sessions() as session:
        if reset:
            reset_password(session, username, password)
        else:
            create_admin(session, username, password)
    click.echo(f"admin {username!r} {'updated' if reset else 'created'}; start the app with `pathosynth serve`")
