"""Alembic environment: runs on the engine the app hands over (no alembic.ini, no URL in a file)."""

from __future__ import annotations

from alembic import context

from pathosynth.reader.tables import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()
