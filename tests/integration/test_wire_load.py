"""Load over the wire protocol: 64 concurrent client connections against
one quorafs node for 20 s, with tools/qfwire.py (a pure-Python client
written from the protocol specification).

Each connection (one thread each) works in the same database and mixes:
autocommit inserts into its own table and into a table all of them share
(every value type as a parameter), explicit BEGIN IMMEDIATE ... COMMIT
transactions that insert into both, point reads of its own rows (checked
value by value), and count queries (its own table and its rows in the
shared table must match what it wrote: read-your-writes), plus counts of
the whole shared table.

Asserted: zero errors of any kind; after the run the exact row counts and
contents agree with what the clients recorded, both over the protocol and
through the mount with sqlite3; integrity_check is ok; the daemon's
session threads and file descriptors (daemon and SQL worker process
summed) go back to where they were (no leaks); it logged no error (warnings go to the timing summary) and stops
cleanly (exit 0).  The summary also gets the operation latencies.

Three shorter tests cover connections that end badly: SIGTERM while 8
connections that wrote are still open (exit 0, unmounted, rows kept);
clients that disconnect while their INSERT waits for the write lock (the
daemon keeps serving); SIGTERM while 8 connections are busy writing (exit
0; every acknowledged row is there after a restart).

For a leak check with AddressSanitizer run it with
QUORAFS_BIN=build-asan/quorafs ASAN_OPTIONS=detect_leaks=1:log_path=DIR/asan
and look for report files in DIR after the run."""
import contextlib
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

import qflib

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import qfwire  # noqa: E402

CONNS = 64
DURATION = 20.0
DB = "load.db"
MAX_ERRORS_SHOWN = 10
FUSE_THREADS = 16  # the daemon's --threads default: they come and go


def family(pid):
    """The daemon and its children (the SQL worker process, which runs
    the sessions)."""
    return [pid] + qflib.child_pids(pid)


def fd_targets(pid):
    out = []
    for p in family(pid):
        for fd in os.listdir(f"/proc/{p}/fd"):
            try:
                out.append(f"{p}:" + os.readlink(f"/proc/{p}/fd/{fd}"))
            except OSError:
                pass
    return sorted(out)


def proc_status(pid):
    """(threads, open fds, VmRSS kB) of the daemon and its children,
    summed."""
    threads = fds = rss = 0
    for p in family(pid):
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    threads += int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
        fds += len(os.listdir(f"/proc/{p}/fd"))
    return threads, fds, rss


def payload(w, seq):
    """The deterministic blob of row @seq of worker @w."""
    return (b"%03d:%08d:" % (w, seq)) * ((seq % 7) + 1)


class Worker(threading.Thread):
    def __init__(self, w, address, stop_at):
        super().__init__(name=f"wire-{w}", daemon=True)
        self.w = w
        self.address = address
        self.stop_at = stop_at
        self.rng = random.Random(1000 + w)
        self.own = 0          # rows in t_<w> (seq 1..own)
        self.shared = 0       # rows of this worker in shared
        self.ops = {}
        self.lat = []         # seconds per successful operation
        self.errors = []
        self.conn = None

    def count(self, what):
        self.ops[what] = self.ops.get(what, 0) + 1

    def insert_own(self, c):
        seq = self.own + 1
        rid, changes = c.exec_sql(
            f"INSERT INTO t_{self.w}(seq, i, f, s, b, n) "
            "VALUES(?, ?, ?, ?, ?, ?)",
            (seq, seq * 1000003 - 2 ** 40, seq / 3.0, f"w{self.w}-{seq}",
             payload(self.w, seq), None))
        assert (rid, changes) == (seq, 1), \
            f"insert own seq {seq}: RESULT {rid}, {changes}"
        self.own = seq

    def insert_shared(self, c):
        seq = self.shared + 1
        rid, changes = c.exec_sql(
            "INSERT INTO shared(w, seq, v) VALUES(?, ?, ?)",
            (self.w, seq, payload(self.w, seq)))
        assert changes == 1 and rid > 0, \
            f"insert shared seq {seq}: RESULT {rid}, {changes}"
        self.shared = seq

    def transaction(self, c):
        c.exec_sql("BEGIN IMMEDIATE")
        try:
            self.insert_own(c)
            self.insert_shared(c)
            c.exec_sql("COMMIT")
        except BaseException:
            self.own, self.shared = self._before
            try:
                c.exec_sql("ROLLBACK")
            except (qfwire.Failure, qfwire.WireError, OSError):
                pass
            raise

    def point_read(self, c):
        if self.own == 0:
            return self.insert_own(c)
        seq = self.rng.randint(1, self.own)
        cols, rows = c.query_sql(
            f"SELECT seq, i, f, s, b, n FROM t_{self.w} WHERE seq = ?",
            (seq,))
        want = (seq, seq * 1000003 - 2 ** 40, seq / 3.0, f"w{self.w}-{seq}",
                payload(self.w, seq), None)
        assert cols == ["seq", "i", "f", "s", "b", "n"], cols
        assert rows == [want], f"row {seq} of t_{self.w}: {rows!r}"

    def counts(self, c):
        _, rows = c.query_sql(f"SELECT count(*), max(seq) FROM t_{self.w}")
        assert rows[0][0] == self.own, \
            f"t_{self.w} has {rows[0][0]} rows, this client wrote {self.own}"
        _, rows = c.query_sql("SELECT count(*) FROM shared WHERE w = ?",
                              (self.w,))
        assert rows == [(self.shared,)], \
            f"shared has {rows} rows of {self.w}, it wrote {self.shared}"

    def shared_count(self, c):
        _, rows = c.query_sql("SELECT count(*) FROM shared")
        assert rows[0][0] >= self.shared, rows

    def run(self):
        choices = ([self.insert_own] * 30 + [self.insert_shared] * 20
                   + [self.transaction] * 10 + [self.point_read] * 25
                   + [self.counts] * 10 + [self.shared_count] * 5)
        try:
            c = self.conn = qfwire.connect([self.address], DB, timeout=30)
        except Exception as e:
            self.errors.append(f"connect: {type(e).__name__}: {e}")
            return
        try:
            while time.monotonic() < self.stop_at:
                op = self.rng.choice(choices)
                self._before = (self.own, self.shared)
                t = time.monotonic()
                try:
                    op(c)
                    self.count(op.__name__)
                    self.lat.append(time.monotonic() - t)
                except (qfwire.Failure, AssertionError) as e:
                    self.errors.append(
                        f"{op.__name__}: {type(e).__name__}: {e} (after "
                        f"{time.monotonic() - t:.3f} s, at "
                        f"{time.strftime('%H:%M:%S')})")
                except (qfwire.WireError, OSError) as e:
                    self.errors.append(
                        f"{op.__name__}: {type(e).__name__}: {e} (after "
                        f"{time.monotonic() - t:.3f} s, at "
                        f"{time.strftime('%H:%M:%S')})")
                    c.close()
                    try:
                        c = self.conn = qfwire.connect([self.address], DB,
                                                       timeout=30)
                    except Exception as e2:
                        self.errors.append(f"reconnect: {e2}")
                        return
                if len(self.errors) >= MAX_ERRORS_SHOWN:
                    return
        finally:
            c.close()


def setup_schema(address):
    c = qfwire.connect([address], DB)
    try:
        # OPEN created the database in WAL mode through the mount.
        _, rows = c.query_sql("PRAGMA journal_mode")
        assert rows == [("wal",)], rows
        c.exec_sql("CREATE TABLE shared (id INTEGER PRIMARY KEY, "
                   "w INTEGER NOT NULL, seq INTEGER NOT NULL, v BLOB, "
                   "UNIQUE(w, seq))")
        for w in range(CONNS):
            c.exec_sql(f"CREATE TABLE t_{w} (seq INTEGER PRIMARY KEY, "
                       "i INTEGER, f REAL, s TEXT, b BLOB, n)")
    finally:
        c.close()


def wait_settled(pid, want_threads, want_fds, timeout=10.0):
    """Poll until the daemon is back to @want_threads threads and
    @want_fds fds (its session threads close their SQLite connections
    and exit asynchronously)."""
    end = time.monotonic() + timeout
    while True:
        st = proc_status(pid)
        if (st[0] <= want_threads and st[1] <= want_fds) \
                or time.monotonic() > end:
            return st
        time.sleep(0.1)


@pytest.mark.deadline(180)
def test_64_connections_mixed_load(node, timing):
    setup_schema(node.address)
    time.sleep(0.5)  # let the setup connection's session end
    base = proc_status(node.pid)
    base_fds = fd_targets(node.pid)
    log_offset = len(node.log())

    stop_at = time.monotonic() + DURATION
    workers = [Worker(w, node.address, stop_at) for w in range(CONNS)]
    t0 = time.monotonic()
    for wk in workers:
        wk.start()
    peak = base
    while any(wk.is_alive() for wk in workers):
        if time.monotonic() > stop_at + 60:
            break
        try:
            st = proc_status(node.pid)
            peak = tuple(max(a, b) for a, b in zip(peak, st))
        except OSError:
            break
        time.sleep(0.5)
    for wk in workers:
        wk.join(timeout=max(0.0, stop_at + 90 - time.monotonic()))
    elapsed = time.monotonic() - t0
    hung = [wk.w for wk in workers if wk.is_alive()]
    for wk in workers:  # unblock a hung one, so the fixture can clean up
        if wk.is_alive() and wk.conn is not None:
            wk.conn.close()

    errors = [f"conn {wk.w}: {e}" for wk in workers for e in wk.errors]
    ops = {}
    for wk in workers:
        for k, v in wk.ops.items():
            ops[k] = ops.get(k, 0) + v
    total = sum(ops.values())
    lat = sorted(x for wk in workers for x in wk.lat) or [0.0]
    timing(f"wire load: {CONNS} connections, {elapsed:.1f} s, {total} "
           f"requests ok ({total / elapsed:.0f}/s): "
           + ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
           + f"; latency p50 {lat[len(lat) // 2] * 1e3:.1f} ms, p99 "
           f"{lat[int(len(lat) * 0.99)] * 1e3:.0f} ms, max {lat[-1]:.2f} s"
           f"; {len(errors)} errors")
    assert not hung, f"connections still running after the deadline: {hung}"
    assert not errors, (f"{len(errors)} errors (first "
                        f"{MAX_ERRORS_SHOWN} per connection):\n"
                        + "\n".join(errors[:40]))
    assert all(wk.ops for wk in workers), "a connection did no work"
    assert node.alive(), "the daemon died"

    # Exact final state, over the protocol and through the mount.
    own = {wk.w: wk.own for wk in workers}
    shared = {wk.w: wk.shared for wk in workers}
    c = qfwire.connect([node.address], DB)
    try:
        for w in range(CONNS):
            _, rows = c.query_sql(f"SELECT count(*), coalesce(max(seq), 0), "
                                  f"coalesce(sum(length(b)), 0) FROM t_{w}")
            want_len = sum(len(payload(w, s)) for s in range(1, own[w] + 1))
            assert rows == [(own[w], own[w], want_len)], (w, rows)
        _, rows = c.query_sql("SELECT w, count(*), max(seq) FROM shared "
                              "GROUP BY w ORDER BY w")
        assert rows == [(w, shared[w], shared[w]) for w in range(CONNS)
                        if shared[w]], rows
    finally:
        c.close()

    db = node.path(DB)
    script = "".join(f"SELECT {w}, count(*), coalesce(max(seq), 0) "
                     f"FROM t_{w};\n" for w in range(CONNS))
    script += "SELECT 'shared', count(*) FROM shared;\n"
    out = qflib.cli(db, script).split()
    want = [f"{w}|{own[w]}|{own[w]}" for w in range(CONNS)]
    want.append(f"shared|{sum(shared.values())}")
    assert out == want
    with contextlib.closing(qflib.connect(db)) as conn:
        got = dict(conn.execute("SELECT w, count(*) FROM shared GROUP BY w"))
        assert got == {w: n for w, n in shared.items() if n}
        bad = [(w, s) for w, s, v in conn.execute(
            "SELECT w, seq, v FROM shared") if v != payload(w, s)]
        assert not bad, f"shared rows with a wrong payload: {bad[:10]}"
    assert qflib.integrity(db) == "ok"

    # No leaks in the daemon: every session thread gone, every file
    # descriptor closed.  FUSE worker threads come and go (at most
    # --threads), so threads are compared with that slack.
    after = wait_settled(node.pid, base[0] + FUSE_THREADS, base[1])
    timing(f"wire load: daemon threads {base[0]} -> peak {peak[0]} -> "
           f"{after[0]}, fds {base[1]} -> peak {peak[1]} -> {after[1]}, "
           f"RSS {base[2]} -> peak {peak[2]} -> {after[2]} kB")
    assert peak[0] >= base[0] + CONNS, \
        f"expected a session thread per connection: peak threads {peak[0]}"
    assert after[1] <= base[1], \
        (f"file descriptors leaked: {base[1]} before, {after[1]} after: "
         f"{base_fds} -> {fd_targets(node.pid)}")
    assert after[0] <= base[0] + FUSE_THREADS, \
        f"threads leaked: {base[0]} before, {after[0]} after"
    run_log = node.log()[log_offset:].splitlines()
    for ln in [ln for ln in run_log if " WARN " in ln][:5]:
        timing("wire load: daemon warning: " + ln)
    errs = [ln for ln in run_log if " ERROR " in ln]
    assert not errs, "the daemon logged errors:\n" + "\n".join(errs[:20])
    node.stop()  # exit 0, unmounted


@pytest.mark.deadline(120)
def test_stop_with_open_connections(node):
    """SIGTERM while clients still hold connections that wrote: the daemon
    must close their sessions, unmount and exit 0, and the rows are there
    after a restart.  (Each session's SQLite connection maps the
    database's -shm through the daemon's own mount, so closing it needs
    the mount still served.)"""
    conns = []
    try:
        for w in range(8):
            c = qfwire.connect([node.address], DB)
            conns.append(c)
            c.exec_sql("CREATE TABLE IF NOT EXISTS s (w INTEGER, v BLOB)")
            c.exec_sql("INSERT INTO s VALUES(?, ?)", (w, payload(w, 1)))
        t0 = time.monotonic()
        rc = node.stop(check=False, timeout=15)
        took = time.monotonic() - t0
        assert rc == 0, (f"the daemon did not stop cleanly with {len(conns)} "
                         f"wire connections open (exit {rc} after "
                         f"{took:.1f} s)\n--- log ---\n{node.log_tail(20)}")
        assert not qflib.is_mounted(node.mount)
    except qflib.DaemonError as e:
        pytest.fail(f"the daemon hung on SIGTERM with {len(conns)} wire "
                    f"connections open (it was killed and its mount "
                    f"aborted): {e}")
    finally:
        for c in conns:
            c.close()
    node.start()
    assert qflib.cli(node.path(DB), "SELECT count(*) FROM s;\n").strip() \
        == "8"


def dead(pid):
    """Gone, or a zombie nobody reaped (its parent was killed)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" in f.read()
    except FileNotFoundError:
        return True


def worker_pids(node):
    return [p for p in family(node.pid) if p != node.pid]


@pytest.mark.deadline(120)
def test_kill9_with_open_sessions(node):
    """kill -9 of the daemon while sessions hold a write transaction: it
    dies at once (its sessions live in the SQL worker process, which
    must not keep the dead daemon's mount busy), the worker dies with it,
    the stale mount unmounts, and after a restart the committed rows are
    there and the open transaction's row is not."""
    conns = []
    try:
        for w in range(4):
            c = qfwire.connect([node.address], DB)
            conns.append(c)
            c.exec_sql("CREATE TABLE IF NOT EXISTS k (w INTEGER)")
            c.exec_sql("INSERT INTO k VALUES(?)", (w,))
        conns[0].exec_sql("BEGIN IMMEDIATE")
        conns[0].exec_sql("INSERT INTO k VALUES(99)")
        workers = worker_pids(node)
        assert len(workers) == 1, f"expected one SQL worker: {workers}"
        node.kill9()
        deadline = time.monotonic() + 10
        while not dead(workers[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dead(workers[0]), "the SQL worker outlived the daemon"
    finally:
        for c in conns:
            c.close()
    node.unmount_stale()
    node.start()
    assert qflib.cli(node.path(DB), "SELECT group_concat(w) FROM "
                     "(SELECT w FROM k ORDER BY w);\n").strip() == "0,1,2,3"
    assert qflib.integrity(node.path(DB)) == "ok"


@pytest.mark.deadline(120)
def test_worker_crash_closes_its_connections(node):
    """The SQL worker process dies (SIGKILL): the daemon logs it, closes
    the connections whose sessions it held (their clients see the
    connection end), starts a new worker for the next client, and loses
    no committed row."""
    a = qfwire.connect([node.address], DB, timeout=10)
    try:
        a.exec_sql("CREATE TABLE c (x INTEGER)")
        a.exec_sql("INSERT INTO c VALUES(1)")
        old = worker_pids(node)
        assert len(old) == 1, old
        os.kill(old[0], signal.SIGKILL)
        with pytest.raises((qfwire.WireError, OSError)):
            a.exec_sql("INSERT INTO c VALUES(2)")
    finally:
        a.close()
    b = qfwire.connect([node.address], DB, timeout=10)
    try:
        b.exec_sql("INSERT INTO c VALUES(3)")
        _, rows = b.query_sql("SELECT group_concat(x) FROM c")
        assert rows == [("1,3",)], rows
    finally:
        b.close()
    new = worker_pids(node)
    assert len(new) == 1 and new != old, (old, new)
    assert "SQL worker process" in node.log()
    assert node.alive()
    node.stop(timeout=15)


@pytest.mark.deadline(120)
def test_clients_start_at_most_one_worker_a_second(node):
    """The SQL worker killed as soon as it appears, again and again, while
    clients keep connecting: a worker starts at most about once a second
    (a request that finds none within a second of the last start waits
    for the next), so a worker that dies on every request cannot become
    a fork loop; once one lives, a new client is served."""
    stop = threading.Event()
    tries = [0, 0]  # requests, of which answered

    def client():
        while not stop.is_set():
            tries[0] += 1
            try:
                with qfwire.Conn(node.address, timeout=3) as c:
                    c.client()
                    c.open(DB)
                    c.query_sql("SELECT 1")
                    tries[1] += 1
            except (qfwire.WireError, qfwire.Failure, OSError):
                pass

    threads = [threading.Thread(target=client) for _ in range(4)]
    for th in threads:
        th.start()
    killed = set()
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 4:
            for p in worker_pids(node):
                if p not in killed:
                    killed.add(p)
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.002)
    finally:
        stop.set()
        for th in threads:
            th.join()
    took = time.monotonic() - t0
    assert node.alive()
    assert tries[0] > 2 * len(killed), (tries, len(killed))
    assert 2 <= len(killed) <= took + 2, (len(killed), took, tries)
    b = qfwire.connect([node.address], DB, timeout=10)
    try:
        _, rows = b.query_sql("SELECT 2")
        assert rows == [(2,)], rows
    finally:
        b.close()
    print(f"{len(killed)} workers killed in {took:.1f} s, {tries[0]} "
          f"requests tried")


@pytest.mark.deadline(120)
def test_client_gone_while_statement_waits(node):
    """Clients that disconnect while their INSERT waits for the write
    lock: the daemon drops those sessions and keeps serving everyone else
    (a session thread must not touch its freed connection when the
    statement ends)."""
    a = qfwire.connect([node.address], DB, timeout=10)
    try:
        a.exec_sql("CREATE TABLE g (x INTEGER)")
        a.exec_sql("BEGIN IMMEDIATE")
        a.exec_sql("INSERT INTO g VALUES(1)")
        step = "connect"
        try:
            for i in range(4):
                step = f"client {i}: connect"
                b = qfwire.connect([node.address], DB, timeout=5,
                                   deadline=5)
                # EXEC_SQL sent, reply never read: the session blocks on
                # the lock that @a holds, and the client goes away.
                step = f"client {i}: send"
                b.send(qfwire.EXEC_SQL, qfwire._ZERO
                       + qfwire.enc_text("INSERT INTO g VALUES(2)"))
                time.sleep(0.2)
                b.close()
            time.sleep(1.0)
            step = "COMMIT of the lock holder"
            a.exec_sql("COMMIT")
            step = "SELECT"
            _, rows = a.query_sql("SELECT x, count(*) FROM g GROUP BY x")
        except (qfwire.WireError, OSError) as e:
            pytest.fail(f"the daemon stopped answering after a client "
                        f"disconnected while its statement waited for the "
                        f"lock ({step}: {type(e).__name__}: {e}); daemon "
                        f"process alive: {node.alive()}\n"
                        f"{node.log_tail(15)}")
        assert rows == [(1, 1)], rows
    finally:
        a.close()
    assert node.alive(), "the daemon died"
    node.stop(timeout=10)


@pytest.mark.deadline(120)
def test_stop_under_load(node):
    """SIGTERM while 8 connections are busy writing: exit 0 and unmount;
    after a restart every acknowledged row is there (and at most one
    unacknowledged row per connection)."""
    c = qfwire.connect([node.address], DB)
    c.exec_sql("CREATE TABLE u (w INTEGER, v TEXT)")
    c.close()
    acked = [0] * 8
    stop = threading.Event()

    def writer(w):
        try:
            conn = qfwire.connect([node.address], DB, timeout=30)
        except Exception:
            return
        try:
            while not stop.is_set():
                conn.exec_sql("INSERT INTO u VALUES(?, ?)", (w, "x" * 1024))
                acked[w] += 1
        except Exception:
            pass  # the daemon went away under it: expected
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(w,), daemon=True)
               for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    try:
        rc = node.stop(check=False, timeout=10)
    except qflib.DaemonError as e:
        stop.set()
        pytest.fail(f"the daemon hung on SIGTERM under load (killed, mount "
                    f"aborted): {e}")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert rc == 0, f"exit {rc} on SIGTERM under load\n{node.log_tail(15)}"
    assert not qflib.is_mounted(node.mount)
    node.start()
    n = int(qflib.cli(node.path(DB), "SELECT count(*) FROM u;\n"))
    assert sum(acked) <= n <= sum(acked) + 8, (n, acked)
    assert qflib.integrity(node.path(DB)) == "ok"


@pytest.mark.deadline(60)
def test_message_and_statement_limits(qf):
    """--max-message and --max-statements: a request larger than the limit
    is refused without storing anything or harming other connections,
    and a connection holds at most the allowed prepared statements (a
    finalized one frees its slot)."""
    n = qf.node()
    n.start(extra=["--max-message", "65536", "--max-statements", "2"])
    c = qfwire.connect([n.address], DB, timeout=10)
    try:
        c.exec_sql("CREATE TABLE lim (x)")
        c.exec_sql("INSERT INTO lim VALUES (?)", (b"x" * 30000,))
        with pytest.raises((qfwire.Failure, qfwire.WireError, OSError)):
            c.exec_sql("INSERT INTO lim VALUES (?)", (b"y" * 100000,))
    finally:
        c.close()
    c = qfwire.connect([n.address], DB, timeout=10)
    try:
        s1, _ = c.prepare("SELECT 1")
        c.prepare("SELECT 2")
        with pytest.raises(qfwire.Failure):
            c.prepare("SELECT 3")
        c.finalize(s1)
        c.prepare("SELECT 3")
        _, rows = c.query_sql("SELECT count(*), max(length(x)) FROM lim")
        assert rows == [(1, 30000)], rows
    finally:
        c.close()
    r = qflib.run_quorafs(["mount", "--data-dir", "/nonexistent",
                           "--mount", "/nonexistent2", "--max-message",
                           "1000"])
    assert r.returncode != 0 and "--max-message" in r.stderr, r.stderr
    assert n.alive()
