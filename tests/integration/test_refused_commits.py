"""A commit that Raft refuses is answered with an error, and nothing of it
survives anywhere: not for readers, not after SQLite's own recovery, not
after a kill -9 of the daemon.  The daemon's fault injection
(QF_FAULT_REFUSE_EVERY=N) refuses every Nth commit that would reach raft."""
import sqlite3
from contextlib import closing

import pytest

from qflib import connect, integrity

REFUSE_EVERY = 4
ATTEMPTS = 60


def write_rows(db, mode):
    """Insert ids 1..ATTEMPTS, each its own transaction.  Returns the ids
    whose commit returned and those that failed with an I/O error."""
    acked, refused = [], []
    with closing(connect(db, mode)) as c:
        while True:
            try:
                c.execute("CREATE TABLE IF NOT EXISTS r(id INTEGER PRIMARY KEY, v BLOB)")
                break
            except sqlite3.OperationalError:
                pass  # the table's creation itself was refused: retry
        for i in range(1, ATTEMPTS + 1):
            try:
                c.execute("INSERT INTO r VALUES (?, randomblob(3000))", (i,))
                acked.append(i)
            except sqlite3.OperationalError as e:
                assert "disk I/O error" in str(e), e
                refused.append(i)
    return acked, refused


def ids(db):
    with closing(connect(db)) as c:
        return [r[0] for r in c.execute("SELECT id FROM r ORDER BY id")]


@pytest.mark.parametrize("mode", ["wal", "delete", "truncate", "persist"])
def test_refused_commits_never_appear(qf, monkeypatch, mode):
    monkeypatch.setenv("QF_FAULT_REFUSE_EVERY", str(REFUSE_EVERY))
    node = qf.node()
    node.start()
    db = node.path("refused.db")
    acked, refused = write_rows(db, mode)
    # Refusals really happened, and most commits went through.
    assert len(refused) >= ATTEMPTS // REFUSE_EVERY - 2, refused
    assert len(acked) >= ATTEMPTS // 2, acked
    assert ids(db) == acked
    assert integrity(db) == "ok"
    # A kill -9 and SQLite's recovery at the next open bring nothing back.
    monkeypatch.delenv("QF_FAULT_REFUSE_EVERY")
    node.crash_restart()
    assert ids(db) == acked
    assert integrity(db) == "ok"
    # The database is still writable.
    with closing(connect(db)) as c:
        c.execute("INSERT INTO r VALUES (1000, x'00')")
    assert ids(db) == acked + [1000]
