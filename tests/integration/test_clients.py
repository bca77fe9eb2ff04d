"""The sqlite3 CLI and Python's sqlite3 through the mount, in each journal
mode: schema changes, VACUUM, a transaction larger than the page cache,
blobs larger than a page, databases in subdirectories; everything is still
there, identical, after a clean restart of the daemon."""
import hashlib
import os
import subprocess
from contextlib import closing

import pytest

from qflib import cli, connect, dump, integrity

MODES = ["wal", "delete", "truncate", "persist"]
KV_ROWS = 100       # in one transaction, then 5 more one by one
BIG_ROWS = 5000     # one transaction, ~1.6 MB with a 10-page cache
BIG_WIDTH = 300
BLOB2_SIZE = 300_000


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scenario_cli(db, mode, blob_file):
    """The scenario through the sqlite3 CLI, one process per step."""
    cli(db, f"""
CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {KV_ROWS})
INSERT INTO kv(k, v) SELECT i, 'value-' || i FROM c;
""", mode)
    for k in range(KV_ROWS + 1, KV_ROWS + 6):
        cli(db, f"INSERT INTO kv(k, v) VALUES ({k}, 'value-{k}');", mode)
    cli(db, """
ALTER TABLE kv ADD COLUMN extra INTEGER DEFAULT 7;
CREATE INDEX kv_v ON kv(v);
UPDATE kv SET extra = k * 2 WHERE k % 3 = 0;
CREATE TABLE gone(x);
INSERT INTO gone VALUES (1), (2);
DROP TABLE gone;
""", mode)
    cli(db, f"""
PRAGMA cache_size = 10;
BEGIN;
CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {BIG_ROWS})
INSERT INTO big SELECT i, printf('%0{BIG_WIDTH}d', i) FROM c;
UPDATE kv SET v = v || '-big' WHERE k <= 10;
COMMIT;
""", mode)
    cli(db, "DELETE FROM big WHERE id % 2 = 0;\nVACUUM;\n", mode)
    cli(db, f"""
CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB NOT NULL);
INSERT INTO blobs VALUES (1, readfile('{blob_file}'));
INSERT INTO blobs VALUES (2, randomblob({BLOB2_SIZE}));
""", mode)


def scenario_python(db, mode, blob_file):
    """The same scenario through Python's sqlite3, one connection per
    step."""
    with closing(connect(db, mode)) as c:
        c.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        c.execute("BEGIN")
        c.executemany("INSERT INTO kv(k, v) VALUES (?, ?)",
                      ((i, f"value-{i}") for i in range(1, KV_ROWS + 1)))
        c.execute("COMMIT")
    with closing(connect(db, mode)) as c:
        for k in range(KV_ROWS + 1, KV_ROWS + 6):
            c.execute("INSERT INTO kv(k, v) VALUES (?, ?)", (k, f"value-{k}"))
    with closing(connect(db, mode)) as c:
        c.execute("ALTER TABLE kv ADD COLUMN extra INTEGER DEFAULT 7")
        c.execute("CREATE INDEX kv_v ON kv(v)")
        c.execute("UPDATE kv SET extra = k * 2 WHERE k % 3 = 0")
        c.execute("CREATE TABLE gone(x)")
        c.execute("INSERT INTO gone VALUES (1), (2)")
        c.execute("DROP TABLE gone")
    with closing(connect(db, mode)) as c:
        c.execute("PRAGMA cache_size = 10")
        c.execute("BEGIN")
        c.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        c.executemany("INSERT INTO big VALUES (?, ?)",
                      ((i, f"{i:0{BIG_WIDTH}d}")
                       for i in range(1, BIG_ROWS + 1)))
        c.execute("UPDATE kv SET v = v || '-big' WHERE k <= 10")
        c.execute("COMMIT")
    with closing(connect(db, mode)) as c:
        c.execute("DELETE FROM big WHERE id % 2 = 0")
        c.execute("VACUUM")
    with closing(connect(db, mode)) as c:
        c.execute("CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
        c.execute("INSERT INTO blobs VALUES (1, ?)", (blob_file.read_bytes(),))
        c.execute("INSERT INTO blobs VALUES (2, ?)", (os.urandom(BLOB2_SIZE),))


def check_content(db, blob_file):
    """The state both scenarios must leave, read with a fresh
    connection."""
    n = KV_ROWS + 5
    with closing(connect(db)) as c:
        assert c.execute("SELECT count(*), sum(k), sum(extra) FROM kv") \
            .fetchone() == (n, n * (n + 1) // 2,
                            sum(2 * k if k % 3 == 0 else 7
                                for k in range(1, n + 1)))
        assert c.execute("SELECT count(*) FROM kv WHERE v LIKE '%-big'") \
            .fetchone() == (10,)
        assert c.execute("SELECT v FROM kv WHERE k = 42").fetchone() == \
            ("value-42",)
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
        assert names == {"kv", "kv_v", "big", "blobs"}
        odd = (BIG_ROWS + 1) // 2
        assert c.execute(
            "SELECT count(*), sum(length(v)), min(id), max(id), sum(id) "
            "FROM big").fetchone() == (
                odd, odd * BIG_WIDTH, 1, BIG_ROWS - (BIG_ROWS + 1) % 2,
                odd * odd)
        assert c.execute("SELECT v FROM big WHERE id = 4321").fetchone() == \
            (f"{4321:0{BIG_WIDTH}d}",)
        assert c.execute("PRAGMA freelist_count").fetchone() == (0,), \
            "VACUUM left free pages"
        b1 = c.execute("SELECT b FROM blobs WHERE id = 1").fetchone()[0]
        assert b1 == blob_file.read_bytes(), "100 KB blob differs"
        assert c.execute("SELECT length(b) FROM blobs WHERE id = 2") \
            .fetchone() == (BLOB2_SIZE,)
    assert integrity(db) == "ok"


def check_mode_files(node, rel, mode):
    """The journal mode was really in use: its traces in the mount."""
    db = node.path(rel)
    journal = node.path(rel + "-journal")
    first = cli(db, "PRAGMA journal_mode;").strip()
    assert first == ("wal" if mode == "wal" else "delete")
    if mode == "delete":
        assert not journal.exists(), "DELETE mode left a journal"
    elif mode == "truncate":
        assert journal.exists() and journal.stat().st_size == 0
    elif mode == "persist":
        assert journal.exists() and journal.stat().st_size > 0
    else:
        assert not node.path(rel + "-wal").exists(), \
            "the -wal should be gone after the last connection closed"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", ["cli", "python"])
def test_clients(node, tmp_path, client, mode):
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(os.urandom(100_000))
    os.makedirs(node.path("sub/deeper"))
    os.makedirs(node.path("empty/dir"))
    dbs = ["app.db", "sub/deeper/nested.db"]
    run = scenario_cli if client == "cli" else scenario_python

    for rel in dbs:
        run(node.path(rel), mode, blob_file)
        check_content(node.path(rel), blob_file)
        check_mode_files(node, rel, mode)
        # Nothing is left open: the backing file is what the mount shows.
        assert sha(node.backing(rel)) == sha(node.path(rel))

    assert sorted(os.listdir(node.path("sub"))) == ["deeper"]
    assert "nested.db" in os.listdir(node.path("sub/deeper"))
    os.rmdir(node.path("empty/dir"))
    os.rmdir(node.path("empty"))
    assert not node.path("empty").exists()
    assert not node.backing("empty").exists()

    before = {rel: dump(node.path(rel)) for rel in dbs}
    node.restart()

    for rel in dbs:
        db = node.path(rel)
        assert dump(db) == before[rel], f"{rel} changed across the restart"
        check_content(db, blob_file)
        # Still writable after the restart, in the same mode.
        if client == "cli":
            cli(db, "INSERT INTO kv(k, v) VALUES (1000, 'after');", mode)
        else:
            with closing(connect(db, mode)) as c:
                c.execute("INSERT INTO kv(k, v) VALUES (1000, 'after')")
        assert cli(db, "SELECT v FROM kv WHERE k = 1000;").strip() == "after"
        assert integrity(db) == "ok"
    assert not node.path("empty").exists()


@pytest.mark.parametrize("where", ["top", "subdir"])
@pytest.mark.parametrize("client", ["cli", "python"])
def test_new_database(node, client, where):
    rel = "new.db" if where == "top" else "fresh/dir/new.db"
    if where == "subdir":
        os.makedirs(node.path("fresh/dir"))
    db = node.path(rel)
    if client == "cli":
        r = cli(db, "", check=False,
                args=["-cmd", "PRAGMA journal_mode=wal; CREATE TABLE t(x)"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "wal"
        # The exact one-liner of the issue, too, on a second database.
        other = node.path(rel.replace("new.db", "other.db"))
        r = subprocess.run(
            ["sqlite3", str(other), "PRAGMA journal_mode=wal; CREATE TABLE t(x)"],
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "wal"
        cli(other, "INSERT INTO t VALUES ('o');")
        assert cli(other, "SELECT x FROM t;").strip() == "o"
    else:
        with closing(connect(db)) as c:
            assert c.execute("PRAGMA journal_mode=wal").fetchone() == ("wal",)
            c.execute("CREATE TABLE t(x)")
    cli(db, "INSERT INTO t VALUES (1), (2), (3);")
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "6"
    assert integrity(db) == "ok"

    node.restart()
    assert cli(db, "PRAGMA journal_mode;").strip() == "wal"
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "6"
    cli(db, "INSERT INTO t VALUES (4);")
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "10"
    assert integrity(db) == "ok"


@pytest.mark.parametrize("mode", MODES)
def test_rollbacks(node, mode):
    """ROLLBACK (with and without pages spilled to the database), ROLLBACK
    TO a savepoint, and a transaction that changes nothing all end cleanly,
    in every journal mode; the next statements (VACUUM included) work and
    only committed rows remain, also after a restart."""
    db = node.path(f"rb-{mode}.db")
    with closing(connect(db, mode)) as c:
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        c.execute("INSERT INTO t VALUES (1, randomblob(100))")
        c.execute("BEGIN")
        c.execute("INSERT INTO t VALUES (2, randomblob(100))")
        c.execute("ROLLBACK")
        # A rollback after the cache spilled pages into the database file.
        c.execute("PRAGMA cache_size=5")
        c.execute("BEGIN")
        c.executemany("INSERT INTO t VALUES (?, randomblob(2000))",
                      [(i,) for i in range(100, 400)])
        c.execute("ROLLBACK")
        c.execute("BEGIN")
        c.execute("INSERT INTO t VALUES (3, randomblob(100))")
        c.execute("SAVEPOINT s")
        c.executemany("INSERT INTO t VALUES (?, randomblob(2000))",
                      [(i,) for i in range(500, 700)])
        c.execute("ROLLBACK TO s")
        c.execute("COMMIT")
        c.execute("BEGIN")
        c.execute("UPDATE t SET v = v WHERE id = 1")  # no page changes
        c.execute("COMMIT")
        c.execute("VACUUM")
        c.execute("INSERT INTO t VALUES (4, randomblob(100))")
    expect = [1, 3, 4]
    with closing(connect(db)) as c:
        assert [r[0] for r in c.execute("SELECT id FROM t ORDER BY id")] == expect
    assert integrity(db) == "ok"
    node.restart()
    with closing(connect(db)) as c:
        assert [r[0] for r in c.execute("SELECT id FROM t ORDER BY id")] == expect
    assert integrity(db) == "ok"
