"""Alembic migrations of the usage database (run by `gridspawner.usage.store.upgrade`)."""
