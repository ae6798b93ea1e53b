"""Storage URLs (SQLAlchemy's, for Optuna studies): the one place that checks them and the one
that shows them. A password in a URL never reaches a message, a log, a file or a worker's argv:
everything shown goes through :func:`masked_url`, and local workers get the URL in their
environment (:data:`STORAGE_ENV`). libpq's own ``PGPASSWORD`` and ``~/.pgpass`` work with a URL
that has no password at all, which is the better way to give one.
"""
from __future__ import annotations

import importlib.util
import re

from .exceptions import ConfigError

__all__ = ["masked_url", "normalise_storage_url", "relative_storage", "STORAGE_ENV", "SCHEMES"]

STORAGE_ENV = "FINETUNE_ADVISOR_STORAGE"     # a worker's --storage when its argv has none (keeps passwords out of ps)
SCHEMES = ("sqlite:", "postgresql", "postgres:", "mysql")
_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^/?#@:\s'\"]*:)(?P<password>[^/?#@\s'\"]*)@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#\s'\"]*)", re.IGNORECASE)


def masked_url(url: object) -> str:
    """``url`` as text with any password replaced by ``***`` (in the user part or a ``password=``
    query argument), wherever a URL occurs in it (a message, a traceback); other text comes back
    unchanged.

    >>> masked_url("postgresql://alice:s3cr%40t@db.example:5432/bench")
    'postgresql://alice:***@db.example:5432/bench'
    >>> masked_url("postgresql://alice@db/bench?password=hunter2&sslmode=require")
    'postgresql://alice@db/bench?password=***&sslmode=require'
    >>> masked_url("sqlite:///bench/b.db")
    'sqlite:///bench/b.db'
    >>> masked_url("OperationalError: could not connect (postgresql+psycopg2://bob:pw@h/db)")
    'OperationalError: could not connect (postgresql+psycopg2://bob:***@h/db)'
    """
    text = str(url)
    text = _PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", text)


def normalise_storage_url(url: str) -> str:
    """Check a storage URL and name its driver: ``postgres://`` (the scheme many hosts hand out)
    is ``postgresql://``; ``postgresql://`` gets the psycopg2 driver when psycopg (3, SQLAlchemy
    2.1's default) is not installed and psycopg2 is.

    >>> normalise_storage_url("sqlite:///bench.db")
    'sqlite:///bench.db'
    >>> normalise_storage_url("redis://me:pw@host/0")
    Traceback (most recent call last):
    ...
    finetune_advisor.exceptions.ConfigError: storage must be an SQLAlchemy URL (sqlite:///file.db or postgresql://...), got 'redis://me:***@host/0'
    """
    if not isinstance(url, str) or not url.startswith(SCHEMES):
        raise ConfigError(f"storage must be an SQLAlchemy URL (sqlite:///file.db or postgresql://...), "
                          f"got {masked_url(url)!r}")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def relative_storage(url: str, root) -> str:
    """What a file meant to be shared records of a storage: an SQLite path relative to ``root``
    (the repository or the working folder) where it lies inside it, else the masked URL.

    >>> relative_storage("sqlite:////repo/docs/bench/c/bench.db", "/repo")
    'sqlite:///docs/bench/c/bench.db'
    >>> relative_storage("postgresql://a:pw@h/db", "/repo")
    'postgresql://a:***@h/db'
    """
    from pathlib import Path

    if url.startswith("sqlite:///") and url[len("sqlite:///"):].startswith("/"):
        path = Path(url[len("sqlite:///"):])
        try:
            return "sqlite:///" + path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return "sqlite:///" + path.name           # outside: the file's name, never the machine's layout
    return masked_url(url)
