"""Alembic environment for gridspawner's usage database.

Run programmatically only (`gridspawner.usage.store.upgrade` passes an open connection in
``config.attributes["connection"]``); versions live in ``gridspawner_alembic_version``, so a
database shared with JupyterHub keeps JupyterHub's own ``alembic_version`` untouched.
"""

from alembic import context

from gridspawner.usage.models import VERSION_TABLE, Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things: later migrations copy the table instead
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
