"""A ~200 MB database whose backing files are current restarts without being
re-hashed or rebuilt from a snapshot; after kill -9 it is intact too.  The
restart times are printed in the session summary (not asserted).

Marked slow (runs by default): skip with -m 'not slow'."""
import hashlib
import shutil
from contextlib import closing

import pytest

from qflib import cli, connect, integrity

TXNS = 10
ROWS_PER_TXN = 5000      # 50,000 rows
BLOB = 4000              # one row per 4 KiB page: ~200 MB


def fingerprint(db):
    """Row count, total size and a hash of every 250th row."""
    with closing(connect(db)) as c:
        n, total = c.execute(
            "SELECT count(*), sum(length(b)) FROM big").fetchone()
        h = hashlib.sha256()
        for i, b in c.execute("SELECT id, b FROM big WHERE id % 250 = 0 "
                              "ORDER BY id"):
            h.update(i.to_bytes(8, "little") + b)
    return n, total, h.hexdigest()


def assert_sizes(node, size):
    """The mount and the backing file agree with the size written."""
    mounted = node.path("large.db").stat().st_size
    backing = node.backing("large.db").stat().st_size
    assert (mounted, backing) == (size, size), \
        f"sizes: mount {mounted}, backing {backing}, written {size}"


@pytest.mark.slow
@pytest.mark.deadline(400)
def test_large_database_restart(qf, timing):
    node = qf.node()
    node.start()
    db = node.path("large.db")
    with closing(connect(db, "wal")) as c:
        c.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
        for _ in range(TXNS):
            c.execute("BEGIN")
            c.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                      f"FROM c WHERE i < {ROWS_PER_TXN}) "
                      f"INSERT INTO big(b) SELECT randomblob({BLOB}) FROM c")
            c.execute("COMMIT")
    size = node.path("large.db").stat().st_size
    assert size >= 190_000_000, f"the database is only {size} bytes"
    before = fingerprint(db)
    assert before[:2] == (TXNS * ROWS_PER_TXN, TXNS * ROWS_PER_TXN * BLOB)

    # Clean restart: the files are current, nothing is re-hashed or rebuilt.
    node.stop()
    secs = node.start()
    timing(f"large restart ({size / 1e6:.0f} MB), clean: "
           f"{secs:.2f} s to ready")
    log = node.log()
    assert "re-hashing backing files" not in log, log
    assert "restoring from snapshot" not in log, log
    assert fingerprint(db) == before
    assert integrity(db, quick=True) == "ok"
    assert_sizes(node, size)

    # kill -9 while idle: re-hashing is allowed, losing data is not.
    secs = node.crash_restart()
    timing(f"large restart ({size / 1e6:.0f} MB), after kill -9: "
           f"{secs:.2f} s to ready")
    assert "restoring from snapshot" not in node.log()
    assert fingerprint(db) == before
    assert integrity(db, quick=True) == "ok"
    assert_sizes(node, size)
    cli(db, "INSERT INTO big(b) VALUES (x'00');")
    assert cli(db, "SELECT count(*) FROM big;").strip() == \
        str(TXNS * ROWS_PER_TXN + 1)

    # 400 MB of data dir and raft log: not worth keeping in pytest's tmp.
    node.stop()
    shutil.rmtree(node.data_dir)
