"""Schema migrations: the tables the code uses are exactly what the migrations build, and upgrading
a database keeps every study, reader and answer in it (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from pathosynth.reader.db import alembic_config, make_engine, upgrade
from pathosynth.reader.tables import Base


def test_the_migrations_build_exactly_the_tables_the_code_uses(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == [], "the ORM tables and the migrations differ: add a migration for " + repr(differences)


def test_upgrading_keeps_every_study_reader_and_answer(database_url):
    engine = make_engine(database_url)
    revisions = [script.revision for script in ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()]
    first = revisions[-1]
    upgrade(engine, first)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO studies (id, name, kind, questions, classes, instructions, settings, is_open, created_at) "
            "VALUES (1, 'kept', 'vtt', '[\"origin\"]', '[]', '', '{}', true, '2026-01-01 00:00:00+00')"))
        connection.execute(text("INSERT INTO cases (id, study_id, key, truth_origin, source, image) "
                                "VALUES (1, 1, 'case-1', 'real', '{}', :image)"), {"image": b"png"})
        connection.execute(text("INSERT INTO readers (id, study_id, name, token, created_at) "
                                "VALUES (1, 1, 'Dr A', 'token-a', '2026-01-01 00:00:00+00')"))
        connection.execute(text("INSERT INTO answers (id, reader_id, case_id, origin, answered_at) "
                                "VALUES (1, 1, 1, 'synthetic', '2026-01-01 00:01:00+00')"))
    upgrade(engine)  # every later migration, as an upgraded server runs them on start
    with engine.connect() as connection:
        kept = connection.execute(text(
            "SELECT s.name, c.key, r.name, a.origin FROM answers a JOIN readers r ON a.reader_id = r.id "
            "JOIN cases c ON a.case_id = c.id JOIN studies s ON c.study_id = s.id")).all()
        head = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    assert [tuple(row) for row in kept] == [("kept", "case-1", "Dr A", "synthetic")]
    assert head == revisions[0]
