"""Debian's go-dqlite `dqlite` shell (a client no one here wrote) against a
quorafs node's wire-protocol port: statements run in SQLite through the
mount, so the shell and local programs see each other's commits."""
import shutil
import subprocess
from contextlib import closing

import pytest

from qflib import cli, connect, free_port, integrity

pytestmark = pytest.mark.skipif(shutil.which("dqlite") is None,
                                reason="go-dqlite's dqlite shell is not installed")


def shell(node, db, sql, fmt="tabular", servers=None, check=True, timeout=120):
    args = ["dqlite", "-s", servers or node.address, "-f", fmt, db, sql]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0 and "Error" not in r.stdout + r.stderr, \
            f"{args} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def test_create_insert_select_every_type(node):
    shell(node, "types.db",
          "CREATE TABLE v(i INTEGER, f REAL, t TEXT, b BLOB, n, ok BOOLEAN, "
          "ts DATETIME)")
    shell(node, "types.db",
          "INSERT INTO v VALUES (42, -0.5, 'hello', x'cafe', NULL, 1, "
          "'2024-05-06 07:08:09')")
    out = shell(node, "types.db", "SELECT i, f, t, n FROM v").stdout
    assert out.split("\n")[0].split("|")[:3] == ["42", "-0.5", "hello"], out
    # go-dqlite 1.11.5's shell formats every row as a|b|c (its -f json
    # flag does not change command output).
    out = shell(node, "types.db", "SELECT ok, ts FROM v", fmt="json").stdout
    assert out.startswith("true|2024-05-06"), out
    # The same row through the mount, by the sqlite3 CLI.
    assert cli(node.path("types.db"),
               "SELECT i, t, hex(b) FROM v;").strip() == "42|hello|CAFE"
    assert integrity(node.path("types.db")) == "ok"


def test_multi_statement_and_errors(node):
    shell(node, "m.db", "CREATE TABLE u(k TEXT PRIMARY KEY); "
                        "INSERT INTO u VALUES ('a'); INSERT INTO u VALUES ('b')")
    out = shell(node, "m.db", "SELECT count(*) FROM u").stdout
    assert "2" in out, out
    r = shell(node, "m.db", "INSERT INTO u VALUES ('a')", check=False)
    assert "UNIQUE constraint failed" in r.stdout + r.stderr, r
    r = shell(node, "m.db", "SELEC nonsense", check=False)
    assert "syntax error" in r.stdout + r.stderr, r
    assert "2" in shell(node, "m.db", "SELECT count(*) FROM u").stdout


def test_large_result(node):
    with closing(connect(node.path("big.db"), "wal")) as c:
        c.execute("CREATE TABLE r(x INTEGER, s TEXT)")
        c.execute("BEGIN")
        c.executemany("INSERT INTO r VALUES (?, ?)",
                      ((i, f"row-{i}") for i in range(100_000)))
        c.execute("COMMIT")
    rows = shell(node, "big.db", "SELECT x, s FROM r ORDER BY x",
                 timeout=300).stdout.splitlines()
    assert len(rows) == 100_000
    assert rows[0] == "0|row-0" and rows[-1] == "99999|row-99999"


def test_leader_discovery_with_several_addresses(node):
    dead = f"127.0.0.1:{free_port()}"
    shell(node, "d.db", "CREATE TABLE t(x)", servers=f"{dead},{node.address}")
    shell(node, "d.db", "INSERT INTO t VALUES (7)",
          servers=f"{node.address},{dead}")
    out = shell(node, "d.db", "SELECT x FROM t", servers=f"{dead},{node.address}")
    assert "7" in out.stdout
    out = shell(node, "d.db", ".leader").stdout
    assert node.address in out, out


def test_mixed_mount_and_protocol(node):
    db = node.path("mix.db")
    cli(db, "PRAGMA journal_mode=wal; CREATE TABLE t(src TEXT, n INTEGER);")
    for i in range(20):
        shell(node, "mix.db", f"INSERT INTO t VALUES ('wire', {i})")
        # A busy timeout, as any program sharing a database needs.
        cli(db, f".timeout 5000\nINSERT INTO t VALUES ('mount', {i});")
    assert cli(db, "SELECT count(*) FROM t;").strip() == "40"
    assert "40" in shell(node, "mix.db", "SELECT count(*) FROM t").stdout
    node.restart()
    assert cli(db, "SELECT src, count(*) FROM t GROUP BY src ORDER BY src;"
               ).split() == ["mount|20", "wire|20"]


def test_concurrent_writers_do_not_fail(node):
    """8 writers at once over the protocol wait for SQLite's lock (busy
    timeout) instead of failing: every insert succeeds."""
    shell(node, "c.db", "CREATE TABLE t(w INTEGER, i INTEGER)")
    script = ("for i in $(seq 1 25); do "
              # go-dqlite retries a dead server forever: bound each run
              f"timeout 20 dqlite -s {node.address} c.db "
              "\"INSERT INTO t VALUES ($W, $i)\" "
              "|| echo FAILED; done")
    procs = [subprocess.Popen(["bash", "-c", script], env={"W": str(w), "PATH": "/usr/bin:/bin"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for w in range(8)]
    outs = [p.communicate(timeout=200)[0] for p in procs]
    assert node.alive(), "the daemon died"
    assert all("FAILED" not in o and "Error" not in o for o in outs), outs
    assert "200" in shell(node, "c.db", "SELECT count(*) FROM t").stdout
    assert integrity(node.path("c.db")) == "ok"
