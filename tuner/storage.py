"""Where a study lives: the Optuna RDB storage, and a lock that its workers share.

Any Optuna RDB URL works (``sqlite:///…``, ``postgresql://…``,
``mysql+pymysql://…``). Several ``privtune tune`` workers, on one machine or
many, may open the same study: each trial they start is claimed inside
:func:`study_lock`, so together they start exactly the requested number of
trials and the baseline once (see :mod:`tuner.study`).

The lock is the database's own where it has one, so it spans machines and is
released by the server when a worker dies:

* PostgreSQL: a session-level advisory lock (``pg_advisory_lock``);
* MySQL / MariaDB: a named lock (``GET_LOCK``);
* SQLite: an exclusive ``flock`` on ``<database>.<purpose>.lock`` beside the file (a
  SQLite file is shared by the processes of one machine, never by several
  machines; the kernel drops the lock of a killed process).

Other dialects get a lock within this process only; the README says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ContextManager

import optuna
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tuner.errors import ConfigError

# A worker records a heartbeat for its running trial this often; a trial whose
# heartbeat is older than the grace period is failed by the next worker that
# looks (a worker on the same machine fails a dead process's trial at once:
# :mod:`tuner.liveness`).
HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 60

_LOCAL_LOCKS: dict[str, threading.Lock] = {}


def check_storage_url(url: str | None) -> None:
    """Refuse a storage URL SQLAlchemy cannot use, before anything is written."""
    if url is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(driver_url(url)).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        hint = ""
        if url.startswith("postgres"):
            hint = "; for PostgreSQL install the driver with `pip install 'privtune[postgres]'`"
        raise ConfigError(
            f"--storage / study.storage: must be an Optuna RDB URL such as sqlite:///study.db or "
            f"postgresql://user@host/db, but got {shown_url(url)!r} ({err}){hint}"
        ) from None


def shown_url(url: str) -> str:
    """``url`` as messages print it: any password replaced by ``***``.

    Error messages and progress lines end up in terminals, CI logs and
    tickets; a database password must not travel with them.

    Example:
        >>> shown_url("postgresql://tuner:SECRET@db.internal:5432/privtune")
        'postgresql://tuner:***@db.internal:5432/privtune'
        >>> shown_url("sqlite:///runs/a/study.db")
        'sqlite:///runs/a/study.db'
    """
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def driver_url(url: str) -> str:
    """``url`` with a PostgreSQL driver that is installed.

    SQLAlchemy reads a plain ``postgresql://`` as psycopg2; privtune's
    ``postgres`` extra installs psycopg 3, so a plain URL is pointed at it
    when psycopg2 is absent. An explicit ``postgresql+driver://`` is kept.
    """
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain) and not _installed("psycopg2") and _installed("psycopg"):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url``, with heartbeats so a dead worker's trial can be failed.

    Workers that start together on an empty database would race to create
    Optuna's tables (PostgreSQL then refuses one of them), so the storage is
    set up under a lock of its own.
    """
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(driver_url(url), poolclass=NullPool)
    try:
        with _named_lock(engine, "privtune:storage", "claim"):
            _use_write_ahead_log(engine)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    driver_url(url), heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S
                )
    finally:
        engine.dispose()
    if storage.engine.dialect.name == "sqlite":
        event.listen(storage.engine, "connect", _sqlite_sync_normal)
        storage.engine.dispose()  # reconnect with the setting
    return storage


def _use_write_ahead_log(engine: Engine) -> None:
    """Put a SQLite study file in WAL mode (a setting of the file; other databases are left alone).

    Each trial writes a few dozen small records; with SQLite's default
    rollback journal every one of them syncs the file twice. In WAL mode,
    with ``synchronous=NORMAL`` (:func:`_sqlite_sync_normal`), a commit
    appends to the log: a killed process loses nothing it committed (a power
    cut may lose the last commits, never the file's consistency), and readers
    (``privtune report``, a second local worker) do not block the writer.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


def _sqlite_sync_normal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def study_lock(storage: optuna.storages.RDBStorage, study_name: str, purpose: str = "claim") -> ContextManager[None]:
    """Hold the lock named (study, purpose) that every worker of the study shares.

    ``purpose`` separates independent critical sections: ``claim`` (starting
    a trial) and ``recommend`` (confirming the recommendation once).
    """
    return _named_lock(storage.engine, f"privtune:{study_name}:{purpose}", purpose)


@contextlib.contextmanager
def _named_lock(engine: Engine, name: str, purpose: str) -> Iterator[None]:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
                connection.commit()
    elif dialect in ("mysql", "mariadb"):
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT GET_LOCK(%s, -1)", (name[:64],))
            try:
                yield
            finally:
                connection.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (name[:64],))
    elif dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        # One SQLite file holds one study per name in practice; the purpose names the lock file.
        lock_path = Path(f"{engine.url.database}.{purpose}.lock")
        with open(lock_path, "a+b") as handle, _local_lock(str(lock_path)):
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    else:
        with _local_lock(name):
            yield


@contextlib.contextmanager
def _local_lock(name: str) -> Iterator[None]:
    lock = _LOCAL_LOCKS.setdefault(name, threading.Lock())
    with lock:
        yield


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


__all__ = ["GRACE_PERIOD_S", "HEARTBEAT_INTERVAL_S", "check_storage_url", "driver_url", "shown_url", "open_storage", "study_lock"]
