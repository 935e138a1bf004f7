"""Run the Alembic migrations programmatically (`photomatch db upgrade`, app startup, tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from photomatch.config import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` that leaves the caller's logging alone."""
    # Built in code rather than from alembic.ini: the URL is passed as an attribute (configparser
    # would choke on '%' in passwords) and fileConfig would reset the app's loggers.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (default: the latest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` ("base" drops everything)."""
    command.downgrade(alembic_config(url), revision)
