"""Alembic environment: the URL comes from the caller (photomatch.migrate) or from Settings."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from pgvector.sqlalchemy import HALFVEC, VECTOR
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

import photomatch.models  # noqa: F401  (registers every table on Base.metadata)
from photomatch.config import database_url, get_settings
from photomatch.db import Base, sqlalchemy_url

config = context.config
# Only the alembic CLI configures logging; programmatic runs (app, tests) keep their own loggers.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url(*, offline: bool = False) -> str:
    url = config.attributes.get("database_url") or get_settings().database_url
    if not url:
        # Printing SQL needs no server; running migrations needs the URL (`photomatch db upgrade` has it).
        url = "postgresql+psycopg://localhost/photomatch" if offline else database_url(get_settings())
    return sqlalchemy_url(url)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Autogenerate would otherwise write pgvector's private module path without importing it.
    if type_ == "type" and isinstance(obj, HALFVEC | VECTOR):
        autogen_context.imports.add("import pgvector.sqlalchemy")
        dim = "" if obj.dim is None else str(obj.dim)
        return f"pgvector.sqlalchemy.{type(obj).__name__}({dim})"
    return False


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    context.configure(
        url=_database_url(offline=True),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over one connection, each revision in its own transaction."""
    engine = create_engine(_database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_type=True,
                transaction_per_migration=True,
                render_item=_render_item,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
