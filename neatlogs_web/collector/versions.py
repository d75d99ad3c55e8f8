"""The database's schema version: the tables are created in an empty file, upgraded in
place from the previous version, and anything else is left untouched.

Version 2 kept one session per session id, whichever app sent it; version 3 keeps one
per session id and workflow. Version 2's spans and trace rows hold all that version 3
needs, so the upgrade sums the sessions again from the trace rows, in one transaction:
if it fails, the file is still a version 2 database. A collector of version 2 refuses a
version 3 file, as it refuses any file it did not write.
"""

from __future__ import annotations

import sqlite3

from .schema import SCHEMA_VERSION, SESSION_TABLES, SPAN_TABLES
from .session_summary import SUM_EVERY_SESSION
from .summaries import NO_WORKFLOW

#: The one earlier version this code upgrades.
UPGRADABLE_VERSION = 2

_UPGRADE = f"""
UPDATE traces SET workflow = '{NO_WORKFLOW}' WHERE workflow IS NULL;
DROP INDEX traces_by_session;
DROP TABLE sessions;
{SESSION_TABLES}
{SUM_EVERY_SESSION};
"""


def create_or_upgrade(connection: sqlite3.Connection) -> bool:
    """Make the database this code's version: create the tables in an empty one, upgrade
    one of `UPGRADABLE_VERSION`; False for any other file, which must not be touched."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return True
    if version == UPGRADABLE_VERSION:
        _in_one_transaction(connection, _UPGRADE)
        return True
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if version != 0 or tables:
        return False
    _in_one_transaction(connection, SPAN_TABLES + SESSION_TABLES)
    return True


def _in_one_transaction(connection: sqlite3.Connection, script: str) -> None:
    """Run `script` and set this version, all or nothing."""
    try:
        connection.executescript(
            f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        )
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
