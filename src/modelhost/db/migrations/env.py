"""Alembic environment: runs on the connection :mod:`modelhost.db.migrate` hands it.

That connection already holds the migration lock (see ``migrate.py``), so whatever this reads
of the schema's version cannot change under it.
"""

from __future__ import annotations

from alembic import context

from modelhost.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
