#!/usr/bin/env python3
"""Record real SQLite sessions for tests/unit/fs/test_wal.c.

Builds walcap.so (the LD_PRELOAD shim beside this file), re-runs itself
under it and, for each scenario, writes into OUT (default
tests/unit/data/wal):

  NAME.cap       every -wal write/ftruncate/fsync of the session (walcap.c
                 describes the format)
  NAME.base.db   the database file before the session (written outside the
                 capture: a fresh file switched to WAL mode)
  NAME.final.db  the database file after the session's last close, which
                 checkpoints every committed frame into it
  NAME.txt       "commits N": write transactions SQLite committed

Usage: python3 capture.py [OUT] [SCENARIO...]
Needs gcc and the system libsqlite3 (3.40.1 on Debian 12); captures hold
random salts, so re-running changes the bytes but not what they test.
"""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "..", "data", "wal"))


def row(i, n, tag="v"):
    """Deterministic text of n bytes for row i."""
    s = ("%s%06d-" % (tag, i)) * (n // 8 + 2)
    return s[:n]


class Session:
    """One database in a temporary directory, a capture file and a count
    of committed write transactions."""

    def __init__(self, tmp, name, page_size=4096):
        self.path = os.path.join(tmp, name + ".db")
        self.commits = 0
        c = sqlite3.connect(self.path, isolation_level=None)
        c.execute("PRAGMA page_size=%d" % page_size)
        c.execute("PRAGMA journal_mode=wal")
        c.close()
        self.base = open(self.path, "rb").read()

    def connect(self, uri_args=""):
        if uri_args:
            return sqlite3.connect("file:%s?%s" % (self.path, uri_args),
                                   uri=True, isolation_level=None)
        return sqlite3.connect(self.path, isolation_level=None)

    def auto(self, c, sql, args=()):
        """An autocommit statement that writes: one commit."""
        c.execute(sql, args)
        self.commits += 1


def sc_autocommit(s, sync):
    c = s.connect()
    c.execute("PRAGMA synchronous=%s" % sync)
    s.auto(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(1, 15):
        s.auto(c, "INSERT INTO t VALUES(?, ?)", (i, row(i, 60 + 37 * i)))
    s.auto(c, "UPDATE t SET v=? WHERE id=3", (row(3, 900, "u"),))
    s.auto(c, "UPDATE t SET v=? WHERE id=7", (row(7, 20, "u"),))
    s.auto(c, "DELETE FROM t WHERE id IN (2, 5)")
    s.auto(c, "CREATE INDEX t_v ON t(v)")
    s.auto(c, "INSERT INTO t VALUES(100, 'last')")
    c.close()


def sc_autocommit_full(s):
    sc_autocommit(s, "FULL")


def sc_autocommit_normal(s):
    sc_autocommit(s, "NORMAL")


def sc_spill(s):
    """Cache spills inside one transaction: pages logged by a spill are
    written again (data-only overwrites), later frames get zero salts and
    the commit rewrites the frame headers."""
    c = s.connect()
    c.execute("PRAGMA cache_size=10")
    s.auto(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.execute("BEGIN")
    for i in range(1, 121):
        c.execute("INSERT INTO t VALUES(?, ?)", (i, row(i, 500)))
    c.execute("UPDATE t SET v=? WHERE id <= 30", (row(0, 500, "x"),))
    c.execute("COMMIT")
    s.commits += 1
    c.execute("BEGIN")
    c.execute("UPDATE t SET v=? WHERE id % 3 = 0", (row(1, 480, "y"),))
    for i in range(121, 141):
        c.execute("INSERT INTO t VALUES(?, ?)", (i, row(i, 500)))
    c.execute("UPDATE t SET v=? WHERE id <= 10", (row(2, 500, "z"),))
    c.execute("COMMIT")
    s.commits += 1
    c.close()


def sc_savepoint(s):
    """ROLLBACK TO over a spilled insert: the write position moves back
    and later frames reuse the slots for other pages."""
    c = s.connect()
    c.execute("PRAGMA cache_size=10")
    s.auto(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for rnd in range(2):
        base = rnd * 1000
        c.execute("BEGIN")
        for i in range(1, 21):
            c.execute("INSERT INTO t VALUES(?, ?)", (base + i, row(i, 300)))
        c.execute("SAVEPOINT s")
        for i in range(21, 71):
            c.execute("INSERT INTO t VALUES(?, ?)",
                      (base + i, row(i, 500, "r")))
        c.execute("ROLLBACK TO s")
        for i in range(500, 530):
            c.execute("INSERT INTO t VALUES(?, ?)", (base + i, row(i, 200)))
        c.execute("RELEASE s")
        c.execute("COMMIT")
        s.commits += 1
    # A full ROLLBACK leaves its frames in the file; nothing is committed.
    c.execute("BEGIN")
    for i in range(3000, 3040):
        c.execute("INSERT INTO t VALUES(?, ?)", (i, row(i, 500, "q")))
    c.execute("ROLLBACK")
    s.auto(c, "INSERT INTO t VALUES(9999, 'after rollback')")
    c.close()


def sc_sp0(s):
    """ROLLBACK TO back to frame 0 right after a TRUNCATE checkpoint: the
    WAL header is rewritten mid-transaction.  Round 0 checkpoints from a
    second connection (the writer's counter is 0: fresh salts at each
    header write); round 1 from the writer itself (same salts reused)."""
    c = s.connect()
    c.execute("PRAGMA cache_size=10")
    other = s.connect()
    s.auto(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    s.auto(c, "INSERT INTO t VALUES(1, 'one')")
    for rnd in range(2):
        base = (rnd + 1) * 1000
        ck = other if rnd == 0 else c
        r = ck.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert r[0] == 0, r
        c.execute("BEGIN")
        c.execute("SAVEPOINT s")
        for i in range(1, 51):
            c.execute("INSERT INTO t VALUES(?, ?)",
                      (base + i, row(i, 500, "s")))
        c.execute("ROLLBACK TO s")
        for i in range(1, 11):
            c.execute("INSERT INTO t VALUES(?, ?)", (base + 500 + i,
                                                     row(i, 100)))
        c.execute("RELEASE s")
        c.execute("COMMIT")
        s.commits += 1
    other.close()
    c.close()


def sc_restart(s):
    """WAL restart at offset 0 after checkpoints: new salts, stale frames
    of the previous generation left after the new ones."""
    c = s.connect()
    s.auto(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    n = 1
    for rnd, (rows, mode) in enumerate([(12, "PASSIVE"), (4, "RESTART"),
                                        (3, "PASSIVE"), (2, None)]):
        for _ in range(rows):
            s.auto(c, "INSERT INTO t VALUES(?, ?)", (n, row(n, 150 + rnd)))
            n += 1
        if mode:
            r = c.execute("PRAGMA wal_checkpoint(%s)" % mode).fetchone()
            assert r[0] == 0 and r[1] == r[2], r
    c.close()


def sc_vacuum(s):
    """The database shrinks: a VACUUM under cache pressure commits a
    smaller size, spilled pages above it stay in the WAL."""
    c = s.connect()
    c.execute("PRAGMA cache_size=10")
    c.execute("PRAGMA synchronous=NORMAL")
    s.auto(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.execute("BEGIN")
    for i in range(1, 61):
        c.execute("INSERT INTO t VALUES(?, ?)", (i, row(i, 300)))
    c.execute("COMMIT")
    s.commits += 1
    s.auto(c, "DELETE FROM t WHERE id > 8")
    s.auto(c, "VACUUM")
    s.auto(c, "INSERT INTO t VALUES(100, 'after vacuum')")
    c.close()


def sc_psow0(s):
    """psow=0: each commit frame is repeated up to the next 4096-byte
    boundary; those padding frames are valid commit frames too."""
    c = s.connect("psow=0")
    s.auto(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(1, 8):
        s.auto(c, "INSERT INTO t VALUES(?, ?)", (i, row(i, 300)))
    c.close()


SCENARIOS = {
    "autocommit_full": (sc_autocommit_full, 4096),
    "autocommit_normal": (sc_autocommit_normal, 1024),
    "spill": (sc_spill, 4096),
    "savepoint": (sc_savepoint, 1024),
    "sp0": (sc_sp0, 1024),
    "restart": (sc_restart, 4096),
    "vacuum": (sc_vacuum, 1024),
    "psow0": (sc_psow0, 4096),
}


def run(out, name):
    fn, page_size = SCENARIOS[name]
    tmp = tempfile.mkdtemp(prefix="walcap-")
    try:
        cap = os.path.join(tmp, name + ".cap")
        s = Session(tmp, name, page_size)
        os.environ["QF_WALCAP"] = cap
        try:
            fn(s)
        finally:
            del os.environ["QF_WALCAP"]
        assert not os.path.exists(s.path + "-wal"), "a connection leaked"
        c = sqlite3.connect(s.path)
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        c.close()
        shutil.copy(cap, os.path.join(out, name + ".cap"))
        with open(os.path.join(out, name + ".base.db"), "wb") as f:
            f.write(s.base)
        shutil.copy(s.path, os.path.join(out, name + ".final.db"))
        with open(os.path.join(out, name + ".txt"), "w") as f:
            f.write("commits %d\n" % s.commits)
        print("%-18s commits=%-3d cap=%d B final=%d B" % (
            name, s.commits, os.path.getsize(cap),
            os.path.getsize(s.path)))
    finally:
        shutil.rmtree(tmp)


def main():
    args = sys.argv[1:]
    out = DEFAULT_OUT
    if args and args[0] not in SCENARIOS:
        out = args.pop(0)
    names = args or list(SCENARIOS)
    if os.environ.get("QF_WALCAP_SHIM") is None:
        tmp = tempfile.mkdtemp(prefix="walcap-so-")
        so = os.path.join(tmp, "walcap.so")
        subprocess.check_call(["gcc", "-std=c11", "-Wall", "-Wextra",
                               "-Werror", "-shared", "-fPIC", "-O2", "-o",
                               so, os.path.join(HERE, "walcap.c"), "-ldl"])
        env = dict(os.environ, LD_PRELOAD=so, QF_WALCAP_SHIM=so)
        rc = subprocess.call([sys.executable, os.path.abspath(__file__),
                              out] + names, env=env)
        shutil.rmtree(tmp)
        sys.exit(rc)
    os.makedirs(out, exist_ok=True)
    for name in names:
        run(out, name)


if __name__ == "__main__":
    main()
