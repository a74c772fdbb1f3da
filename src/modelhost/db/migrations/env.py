"""Alembic environment: runs on the connection :mod:`modelhost.db.migrate` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from modelhost.db.tables import metadata

# Any number of replicas may start at once; on PostgreSQL they take turns migrating.
_MIGRATION_LOCK = 0x6D6F64656C686F  # "modelho"

connection = context.config.attributes["connection"]
is_postgres = connection.dialect.name == "postgresql"
if is_postgres:
    connection.execute(text(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})"))
try:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
finally:
    if is_postgres:
        connection.execute(text(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})"))
