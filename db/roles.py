"""PostgreSQL roles: the application's role may add to the audit trail and read it, never change it.

The schema belongs to an owner role that runs the migrations (``python -m monitor db upgrade``); the
dashboards and commands connect as another role, granted here: every right on the data they change, and on
``audit_log`` only SELECT and INSERT. Such a role cannot UPDATE, DELETE or TRUNCATE the trail, nor set its
triggers aside (only a table's owner may ALTER it). docs/deployment.md, "The store".
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# The tables the application reads but never writes.
READ_ONLY = ("alembic_version",)
# The tables it may only read and add to.
APPEND_ONLY = ("audit_log",)


class RoleError(ValueError):
    """The role cannot be made the application's (it does not exist, or it owns the schema)."""


def grant_app_role(connection: Connection, role: str) -> list[str]:
    """Grant ``role`` what the application needs and no more, on the tables of the current schema, now and
    (default privileges) on those later migrations add; returns the statements run. Run as the owner."""
    if connection.dialect.name != "postgresql":
        raise RoleError("only a PostgreSQL store has roles (a SQLite store is a file: protect the file)")
    found = connection.execute(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    if found is None:
        raise RoleError(f"no role {role!r}: create it first (CREATE ROLE {role} LOGIN PASSWORD '...')")
    owner = connection.execute(
        text(
            "SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'audit_log'"
        )
    ).scalar()
    if owner is None:
        raise RoleError("the store has no audit trail yet: run python -m monitor db upgrade first")
    if found.rolsuper or owner == role:
        raise RoleError(
            f"{role!r} owns the schema or is a superuser, and could rewrite the trail: the application "
            "needs a role of its own"
        )
    quoted = connection.dialect.identifier_preparer.quote(role)
    schema = connection.dialect.identifier_preparer.quote(
        connection.execute(text("SELECT current_schema()")).scalar_one()
    )
    statements = [
        f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {quoted}",
        *(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {table} FROM {quoted}" for table in READ_ONLY),
        *(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {quoted}" for table in APPEND_ONLY),
        # Read-only, as grants made by hand (or by PUBLIC) may have left more.
        *(f"REVOKE REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema} FROM {quoted}",),
    ]
    for statement in statements:
        connection.execute(text(statement))
    return statements
