"""Our client against a real dqlite: `quorafs shell` and `quorafs cluster`
talk to a libdqlite 1.11 node started by Debian's `dqlite-demo` (package
go-dqlite, installed by tools/install-deps.sh) on loopback.

What is checked: every value type through insert and select, in tabular
output (byte for byte what the reference `dqlite` shell prints for the
same query) and in JSON; errors come back with dqlite's message and a
non-zero exit; multi-statement SQL runs statement by statement and stops
at the first error; a 10,000-row result streams complete (the server
sends it in many ROWS batches); statements on stdin; leader discovery
through an unreachable address; `cluster list` shows the node as leader.

One dqlite-demo node serves the whole module; it is killed by pid at
teardown, even when a test failed.  Each test uses its own database."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from qflib import free_port, kill_pid, quorafs_bin

DEMO = shutil.which("dqlite-demo")
DQLITE = shutil.which("dqlite")
BOOTSTRAP_ID = 0x2dc171858c3155be  # dqlite-demo's first node (§8.5)
ENV = dict(os.environ, TZ="UTC")  # timestamps print in the local zone

pytestmark = pytest.mark.skipif(
    DEMO is None or DQLITE is None,
    reason="go-dqlite is not installed (tools/install-deps.sh installs it)")


class Demo:
    """A dqlite-demo node: its wire-protocol address and process."""

    def __init__(self, base):
        self.dir = base / "demo"
        self.dir.mkdir()
        self.db = f"127.0.0.1:{free_port()}"
        self.api = f"127.0.0.1:{free_port()}"
        self.log_path = base / "demo.log"
        self.proc = None

    def start(self, timeout=60.0):
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [DEMO, "--db", self.db, "--api", self.api,
             "--dir", str(self.dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=ENV)
        log.close()
        # Ready when the node answers as leader over the protocol.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dqlite-demo exited: {self.log()}")
            r = cluster("list", servers=self.db, check=False, timeout=15,
                        extra=["-t", "2"])
            if r.returncode == 0 and "leader" in r.stdout:
                return
            time.sleep(0.2)
        raise AssertionError(f"dqlite-demo not ready: {self.log()}")

    def log(self):
        try:
            return self.log_path.read_text()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # runs its handover
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_pid(self.proc)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = Demo(tmp_path_factory.mktemp("dqlite"))
    try:
        d.start()
        yield d
    finally:
        d.stop()
        kill_pid(d.proc)  # whatever stop() left


def shell(servers, db, sql=None, fmt=None, stdin=None, check=True,
          timeout=120):
    """Run `quorafs shell`; CompletedProcess (text)."""
    args = [quorafs_bin(), "shell", "-s", servers]
    if fmt is not None:
        args += ["-f", fmt]
    args.append(db)
    if sql is not None:
        args.append(sql)
    r = subprocess.run(args, input=stdin, capture_output=True, text=True,
                       timeout=timeout, env=ENV,
                       stdin=None if stdin is not None else
                       subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, \
            f"quorafs shell failed ({r.returncode}): {r.stderr}"
    return r


def cluster(*cmd, servers, check=True, timeout=60, extra=()):
    r = subprocess.run([quorafs_bin(), "cluster", "-s", servers, *extra,
                        *cmd], capture_output=True, text=True,
                       timeout=timeout, env=ENV, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, \
            f"quorafs cluster failed ({r.returncode}): {r.stderr}"
    return r


def dqlite_shell(servers, db, sql):
    """The reference shell's output for @sql."""
    r = subprocess.run([DQLITE, "-s", servers, db, sql],
                       capture_output=True, text=True, timeout=60, env=ENV,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"dqlite shell failed: {r.stderr}"
    return r.stdout


def closed_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# Columns of every value type of §6.2: the decltypes make dqlite send
# BOOLEAN, UNIXTIME (an integer in a DATETIME column) and ISO8601 (text or
# NULL in a DATETIME/DATE column).
VALUES_SCHEMA = ("CREATE TABLE v (k INTEGER PRIMARY KEY, i INTEGER, "
                 "f REAL, t TEXT, b BLOB, n, bo BOOLEAN, ts DATETIME, "
                 "d DATE)")
VALUES_ROWS = [
    "(1, 42, -0.5, 'héllo wörld', x'0001ff', NULL, 1, 1700000000, "
    "'2020-01-02')",
    "(2, -9223372036854775808, 1e-7, '', x'', NULL, 0, "
    "'2020-01-02 03:04:05.5', NULL)",
    "(3, 9223372036854775807, 3.0, 'a|b', NULL, 7, NULL, "
    "'2021-06-07T08:09:10+02:00', '2020-01-02T03:04:05Z')",
    "(4, 0, 123456789.125, 'x', x'41', 1.5, 5, NULL, '1999-12-31 23:59')",
    "(5, 1000000, 1e300, 'line\nbreak', x'00', 2.5e-5, 0, 0, "
    "'2021-06-07 08:09:10.123456789')",
]
TABULAR = """\
1|42|-0.5|héllo wörld|[0 1 255]|<nil>|true|2023-11-14 22:13:20 +0000 UTC|2020-01-02 00:00:00 +0000 UTC
2|-9223372036854775808|1e-07||[]|<nil>|false|2020-01-02 03:04:05.5 +0000 UTC|<nil>
3|9223372036854775807|3|a|b|<nil>|7|false|2021-06-07 08:09:10 +0200 +0200|2020-01-02 03:04:05 +0000 UTC
4|0|1.23456789125e+08|x|[65]|1.5|true|<nil>|1999-12-31 23:59:00 +0000 UTC
5|1000000|1e+300|line
break|[0]|2.5e-05|false|1970-01-01 00:00:00 +0000 UTC|2021-06-07 08:09:10.123456789 +0000 UTC
"""


def load_values(demo, db):
    sql = VALUES_SCHEMA + ";" + ";".join(
        f"INSERT INTO v VALUES {row}" for row in VALUES_ROWS)
    r = shell(demo.db, db, sql)
    assert r.stdout == ""


def test_cluster_list_shows_leader(demo):
    """One line for the single node: its id, address, role, `leader`."""
    r = cluster("list", servers=demo.db)
    lines = r.stdout.splitlines()
    assert lines == [f"{BOOTSTRAP_ID} {demo.db} voter leader"], r.stdout


def test_cluster_refusals(demo):
    """Membership changes go to the leader; dqlite's refusals come back
    as errors with its message."""
    r = cluster("transfer", str(BOOTSTRAP_ID), servers=demo.db,
                check=False)
    assert r.returncode == 1
    assert "server ID is not valid" in r.stderr  # transfer to itself
    r = cluster("remove", "12345", servers=demo.db, check=False)
    assert r.returncode == 1 and r.stderr.strip()
    r = cluster("assign", "12345", "spare", servers=demo.db, check=False)
    assert r.returncode == 1 and r.stderr.strip()
    r = cluster("assign", "1", "boss", servers=demo.db, check=False)
    assert r.returncode == 2 and "boss" in r.stderr
    # Still the same one-member cluster.
    r = cluster("list", servers=demo.db)
    assert r.stdout.count("\n") == 1 and "leader" in r.stdout


def test_every_type_tabular(demo):
    """Tabular output of every value type: as expected, and byte for byte
    what the reference dqlite shell prints for the same query."""
    load_values(demo, "types_tab")
    query = "SELECT * FROM v ORDER BY k"
    ours = shell(demo.db, "types_tab", query).stdout
    assert ours == TABULAR
    assert ours == dqlite_shell(demo.db, "types_tab", query)


def test_every_type_json(demo):
    """-f json: one array of objects per query, values typed."""
    load_values(demo, "types_json")
    r = shell(demo.db, "types_json", "SELECT * FROM v ORDER BY k",
              fmt="json")
    rows = json.loads(r.stdout)
    assert len(rows) == 5
    assert list(rows[0]) == ["k", "i", "f", "t", "b", "n", "bo", "ts", "d"]
    assert rows[0]["i"] == 42 and rows[0]["f"] == -0.5
    assert rows[0]["t"] == "héllo wörld"
    assert base64.b64decode(rows[0]["b"]) == b"\x00\x01\xff"
    assert rows[0]["n"] is None and rows[0]["bo"] is True
    assert rows[0]["ts"] == "2023-11-14T22:13:20Z"  # UNIXTIME
    assert rows[0]["d"] == "2020-01-02"  # ISO8601, as stored
    assert rows[1]["i"] == -2**63 and rows[1]["f"] == 1e-7
    assert rows[1]["b"] == "" and rows[1]["bo"] is False
    assert rows[1]["d"] is None  # ISO8601 NULL comes as "" (§6.2)
    assert rows[2]["i"] == 2**63 - 1
    assert rows[2]["f"] == 3.0 and isinstance(rows[2]["f"], float)
    assert rows[2]["b"] is None and rows[2]["n"] == 7
    assert rows[2]["bo"] is False  # NULL BOOLEAN is 0 in 1.11 (§6.2)
    assert rows[3]["ts"] is None and rows[3]["bo"] is True
    assert rows[4]["f"] == 1e300 and rows[4]["t"] == "line\nbreak"
    # An empty result is an empty array; each query is its own array.
    r = shell(demo.db, "types_json",
              "SELECT k FROM v WHERE k > 99; SELECT count(*) AS c FROM v",
              fmt="json")
    parts = r.stdout.split("\n", 1)
    assert json.loads(parts[0]) == []
    assert json.loads(parts[1]) == [{"c": 5}]


def test_errors(demo):
    """Errors exit 1 with dqlite's own message on stderr."""
    shell(demo.db, "errs", "CREATE TABLE u (k TEXT UNIQUE); "
          "INSERT INTO u VALUES ('a')")
    cases = [
        ("SELEC 1", 'near "SELEC": syntax error'),
        ("INSERT INTO u VALUES ('a')", "UNIQUE constraint failed: u.k"),
        ("SELECT * FROM missing", "no such table: missing"),
        ("INSERT INTO missing VALUES (1)", "no such table: missing"),
    ]
    for sql, message in cases:
        r = shell(demo.db, "errs", sql, check=False)
        assert r.returncode == 1, (sql, r.stdout, r.stderr)
        assert message in r.stderr, (sql, r.stderr)
        assert r.stdout == ""
    # The table is intact and the connection logic unharmed.
    assert shell(demo.db, "errs", "SELECT k FROM u").stdout == "a\n"


def test_multi_statement(demo):
    """Statements separated by ';' run in order; the first error stops
    the rest; ';' inside a string does not split."""
    r = shell(demo.db, "multi",
              "CREATE TABLE m (x INTEGER, s TEXT); "
              "INSERT INTO m VALUES (1, 'a;b'); INSERT INTO m VALUES (2, '');"
              "SELECT sum(x) FROM m; SELECT s FROM m WHERE x = 1;")
    assert r.stdout == "3\na;b\n"
    r = shell(demo.db, "multi",
              "INSERT INTO m VALUES (10, ''); INSERT INTO nope VALUES (1); "
              "INSERT INTO m VALUES (20, '')", check=False)
    assert r.returncode == 1 and "no such table: nope" in r.stderr
    r = shell(demo.db, "multi", "SELECT x FROM m ORDER BY x")
    assert r.stdout == "1\n2\n10\n"
    # PRAGMA with rows is a query; one without is run as a statement
    # (dqlite refuses it as a query: FAILURE 1 "not an error", §4.9).
    r = shell(demo.db, "multi",
              "PRAGMA foreign_keys = ON; PRAGMA table_info(m)")
    assert r.stdout.splitlines()[0].startswith("0|x|INTEGER|")
    # BEGIN ... COMMIT typed by the user is one transaction.
    shell(demo.db, "multi", "BEGIN; INSERT INTO m VALUES (30, ''); "
          "INSERT INTO m VALUES (31, ''); COMMIT")
    r = shell(demo.db, "multi", "SELECT count(*) FROM m WHERE x >= 30")
    assert r.stdout == "2\n"


def test_large_result(demo):
    """10,000 rows come back complete and in order, streamed over many
    ROWS batches, in both formats; identical to the dqlite shell's."""
    shell(demo.db, "large",
          "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT); "
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
          "WHERE x < 10000) INSERT INTO big SELECT x, 'row-' || x FROM c")
    query = "SELECT id, v FROM big ORDER BY id"
    t0 = time.monotonic()
    r = shell(demo.db, "large", query)
    elapsed = time.monotonic() - t0
    lines = r.stdout.splitlines()
    assert len(lines) == 10000
    assert lines[0] == "1|row-1" and lines[-1] == "10000|row-10000"
    assert all(line == f"{i}|row-{i}" for i, line in
               enumerate(lines, start=1))
    assert r.stdout.rstrip("\n") == dqlite_shell(demo.db, "large",
                                                 query).rstrip("\n")
    assert elapsed < 30, f"10,000 rows took {elapsed:.1f} s"
    rows = json.loads(shell(demo.db, "large", query, fmt="json").stdout)
    assert len(rows) == 10000 and rows[9999] == {"id": 10000,
                                                 "v": "row-10000"}


def test_stdin_statements(demo):
    """Statements read from stdin, split across lines; an error is
    reported, the rest still runs, and the exit status is 1."""
    script = ("CREATE TABLE s (x);\nINSERT INTO s\n  VALUES (1);\n"
              "INSERT INTO nowhere VALUES (2);\n"
              "SELECT x\nFROM s;\n.leader\n")
    r = shell(demo.db, "stdin", stdin=script, check=False)
    assert r.returncode == 1
    assert "no such table: nowhere" in r.stderr
    assert r.stdout == f"1\n{demo.db}\n"
    r = shell(demo.db, "stdin", stdin="SELECT count(*) FROM s;\n")
    assert r.stdout == "1\n"


def test_discovery_with_several_addresses(demo):
    """An unreachable address first, the node second: discovery moves
    on and finds the leader; both commands work."""
    servers = f"{closed_address()},{demo.db}"
    r = shell(servers, "disc", "SELECT 40 + 2")
    assert r.stdout == "42\n"
    r = cluster("list", servers=servers)
    assert "leader" in r.stdout and demo.db in r.stdout
    # Nothing reachable: a clear failure, not a hang.
    r = subprocess.run([quorafs_bin(), "shell", "-s", closed_address(),
                        "-t", "1", "disc", "SELECT 1"],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "connection refused" in r.stderr.lower()
