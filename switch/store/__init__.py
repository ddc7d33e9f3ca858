"""The store: PostgreSQL (embedded or by URL), migrations, PAN vault, leased ids, group commit,
projects, idempotency keys and the store-and-forward queue (``saf``).

Typical start::

    db = await open_database(DbConfig.from_env(data_dir=data_dir))
    vault = Vault.from_env_or_dir(data_dir)
    ids = DbIds(db.pool); await ids.start()
    writer = GroupWriter(db.pool)
    ...
    await writer.close(); await ids.close(); await db.close()   # database last
"""

from switch.store.db import DATABASE_DOWN, Database, DbConfig, dsn_with_database, open_database, redact_dsn
from switch.store.errors import (
    DatabaseUnavailable,
    DecryptError,
    InvalidSettings,
    MigrationError,
    ProjectExists,
    SequenceExhausted,
    StoreError,
    UnknownKey,
    VaultConfigError,
    VaultError,
    WriterClosed,
)
from switch.store.idempotency import Begin, BeginState, Idempotency, request_fingerprint
from switch.store.ids import DbIds, LeasedSequence
from switch.store.projects import Project, Projects, ProjectSettings
from switch.store.vault import Vault
from switch.store.writer import Columns, GroupWriter

__all__ = [
    "DATABASE_DOWN",
    "Begin",
    "BeginState",
    "Columns",
    "Database",
    "DatabaseUnavailable",
    "DbConfig",
    "DbIds",
    "DecryptError",
    "GroupWriter",
    "Idempotency",
    "InvalidSettings",
    "LeasedSequence",
    "MigrationError",
    "Project",
    "ProjectExists",
    "ProjectSettings",
    "Projects",
    "SequenceExhausted",
    "StoreError",
    "UnknownKey",
    "Vault",
    "VaultConfigError",
    "VaultError",
    "WriterClosed",
    "dsn_with_database",
    "open_database",
    "redact_dsn",
    "request_fingerprint",
]
