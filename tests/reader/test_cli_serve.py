"""`pathosynth admin` and `pathosynth serve` from the command line: what a user can get wrong ends in
one sentence and a non-zero exit."""

from __future__ import annotations

import pytest

from pathosynth.cli import main
from pathosynth.reader.db import open_database
from pathosynth.reader.security import verify_password
from pathosynth.reader.tables import Admin


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_admin_is_created_once_and_its_password_can_be_reset(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    monkeypatch.setenv("PATHOSYNTH_ADMIN_PASSWORD", "first password")
    assert run(["admin", "alice", "--db", url], capsys) == (0, "admin 'alice' created; start the app with "
                                                              "`pathosynth serve`\n")
    code, output = run(["admin", "alice", "--db", url], capsys)
    assert code == 1 and output == "error: admin 'alice' already exists; log in with it or choose another name\n"
    monkeypatch.setenv("PATHOSYNTH_ADMIN_PASSWORD", "second password")
    assert run(["admin", "alice", "--db", url, "--reset"], capsys)[0] == 0
    _engine, sessions = open_database(url)
    with sessions() as session:
        stored = session.query(Admin).one().password_hash
    assert verify_password("second password", stored) and not verify_password("first password", stored)


@pytest.mark.parametrize("argv, message", [
    (["admin", "bob", "--db", "mysql://x/y"], "error: --db 'mysql://x/y': only SQLite and PostgreSQL are supported"),
    (["admin", "bob", "--db", "not a url"], "error: --db 'not a url' is not a database URL; give sqlite:///FILE or "
                                            "postgresql+psycopg://USER:PASSWORD@HOST/DB"),
    (["admin", "bob", "--db", "sqlite:////no/such/folder/x.sqlite"],
     "error: /no/such/folder/x.sqlite: its folder does not exist; create it or give another --db path"),
    (["serve", "--data-root", "/no/such/folder"], "--data-root"),
])
def test_bad_arguments_are_one_sentence(argv, message, monkeypatch, capsys):
    monkeypatch.setenv("PATHOSYNTH_ADMIN_PASSWORD", "long enough")
    code, output = run(argv, capsys)
    assert code != 0 and message in output and "Traceback" not in output
    assert output.count("\n") == 1 or argv[0] == "serve"


def test_an_unreachable_postgresql_server_is_one_sentence(monkeypatch, capsys):
    monkeypatch.setenv("PATHOSYNTH_ADMIN_PASSWORD", "long enough")
    code, output = run(["admin", "bob", "--db", "postgresql+psycopg://u:p@127.0.0.1:9/none"], capsys)
    assert code == 1 and output.startswith("error: cannot reach the database postgresql+psycopg://u:***@127.0.0.1:9/none")
    assert output.rstrip().endswith("check --db and that the server is running") and "Traceback" not in output
