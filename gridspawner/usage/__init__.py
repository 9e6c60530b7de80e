"""Usage records, prices and GPU quotas (see docs/admin/usage.md).

- `models`, `migrations/`: gridspawner's own tables (SQLAlchemy, Alembic);
- `store`: where the database is, its schema upgrade, async access (a thread pool);
- `queries`, `buckets`, `periods`: pure statement builders and calendar arithmetic;
- `pricing`, `quotas`, `config`, `traits`: the admin's settings and the pure rules;
- `recorder`, `runtime`, `enforcer`, `stop_requests`, `spawner_usage`: the hub side.
"""
