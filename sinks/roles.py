"""The writer, analyst and dashboard roles of a ClickHouse server (``server_roles.sql``)."""

from __future__ import annotations

from importlib import resources

from tripwire.sinks.migrations import split_statements
from tripwire.sinks.store import Store, check_identifier


def roles_statements(database: str) -> list[str]:
    text = resources.files("tripwire.sinks").joinpath("server_roles.sql").read_text(encoding="utf-8")
    db = check_identifier(database, "database")
    return [s.replace("${DATABASE}", db) for s in split_statements(text)]


def create_roles(store: Store) -> None:
    """Create the roles and grants (idempotent). Needs a user with access management."""
    for stmt in roles_statements(store.database):
        store.command(stmt)
