"""Replication across a 3-node cluster on loopback: node 1 bootstraps,
nodes 2 and 3 join with --join; each has its own data dir and mount.

Writes go through the leader's mount with the sqlite3 CLI or Python's
sqlite3; followers' mounts are read by the same clients.  Asserted:
commits become visible on both followers (timed, reported), followers'
readers never see a torn state while writes run, all nodes end with the
same `.dump` and pass integrity_check, WAL and DELETE-mode databases
alike, local writes on a follower fail at once without changing
anything, and a follower that was down catches up when it restarts."""
import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

import qflib

VISIBLE_WITHIN = 5.0  # generous for a loaded CI machine; the real lag
#                       is reported in the summary


def start_cluster(qf, extra=()):
    """Three nodes on loopback, each started with @extra: node 1
    bootstraps, 2 and 3 join it."""
    n1 = qf.node("n1", node_id=1)
    n1.start(extra=list(extra))
    nodes = [n1]
    for i in (2, 3):
        n = qf.node(f"n{i}", node_id=i)
        n.start(bootstrap=False, extra=["--join", n1.address] + list(extra))
        nodes.append(n)
    return nodes


@pytest.fixture
def cluster(qf):
    return start_cluster(qf)


def wait_until(fn, timeout, what):
    t0 = time.monotonic()
    while True:
        try:
            if fn():
                return time.monotonic() - t0
        except sqlite3.Error:
            pass  # e.g. the table is not there yet
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


def count(node, db, table="t"):
    with contextlib.closing(sqlite3.connect(str(node.path(db)),
                                            timeout=10)) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def verify(nodes):
    return qflib.run_quorafs(["verify", "-s", ",".join(n.address for n in nodes),
                              "-t", "30"], timeout=120)


def same_everywhere(nodes, db):
    r = verify(nodes)
    assert r.returncode == 0, f"quorafs verify:\n{r.stdout}{r.stderr}"
    assert "nodes identical" in r.stdout, r.stdout
    dumps = [qflib.dump(n.path(db)) for n in nodes]
    for n, d in zip(nodes[1:], dumps[1:]):
        assert d == dumps[0], f"{n.name} differs from {nodes[0].name}"
    for n in nodes:
        assert qflib.integrity(n.path(db)) == "ok", n.name


def test_cluster_forms(cluster, timing):
    out = qflib.run_quorafs(["cluster", "-s", cluster[0].address,
                             "list"]).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 3, out
    assert all(" voter" in ln for ln in lines), out
    assert all(" applied=" in ln for ln in lines), out  # each node's index
    assert "leader" in lines[0] and lines[0].startswith("1 "), out
    timing("replication: joined in "
           + ", ".join(f"{n.last_ready_seconds:.2f} s" for n in cluster[1:]))


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_writes_visible_on_followers(cluster, mode, timing):
    leader, followers = cluster[0], cluster[1:]
    db = f"{mode}.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(i INTEGER PRIMARY KEY, "
              "v TEXT);\n", mode=mode)
    lags = []
    for i in range(1, 21):
        qflib.cli(leader.path(db), f"INSERT INTO t VALUES ({i}, "
                  f"'value {i}');\n")
        for f in followers:
            lags.append(wait_until(lambda: count(f, db) == i,
                                   VISIBLE_WITHIN,
                                   f"row {i} on {f.name} ({mode})"))
    lags.sort()
    timing(f"replication ({mode}): follower sees a commit after "
           f"p50 {lags[len(lags) // 2] * 1e3:.0f} ms, "
           f"max {lags[-1] * 1e3:.0f} ms")
    same_everywhere(cluster, db)


@pytest.mark.deadline(180)
@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_followers_never_see_a_torn_state(cluster, mode):
    """Bank transfers on the leader; readers on both followers check the
    total on every read (in WAL mode they are never blocked; in DELETE
    mode the applier waits for their SHARED locks, and they for its
    EXCLUSIVE one)."""
    leader, followers = cluster[0], cluster[1:]
    db = f"bank-{mode}.db"
    accounts, total = 20, 20 * 1000
    with contextlib.closing(qflib.connect(leader.path(db), mode=mode)) as c:
        c.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)")
        c.execute("BEGIN")
        for i in range(accounts):
            c.execute("INSERT INTO acct VALUES (?, 1000)", (i,))
        c.execute("COMMIT")
    for f in followers:
        wait_until(lambda: count(f, db, "acct") == accounts, 10,
                   f"accounts on {f.name}")
    stop = threading.Event()
    bad, reads = [], [0]

    def reader(node):
        with contextlib.closing(sqlite3.connect(str(node.path(db)),
                                                timeout=10)) as c:
            while not stop.is_set():
                s, n = c.execute("SELECT sum(bal), count(*) FROM "
                                 "acct").fetchone()
                reads[0] += 1
                if s != total or n != accounts:
                    bad.append((node.name, s, n))

    threads = [threading.Thread(target=reader, args=(f,)) for f in followers
               for _ in range(2)]
    for t in threads:
        t.start()
    transfers = 0
    try:
        with contextlib.closing(qflib.connect(leader.path(db))) as c:
            t_end = time.monotonic() + 5
            while time.monotonic() < t_end:
                a, b = transfers % accounts, (transfers * 7 + 3) % accounts
                c.execute("BEGIN IMMEDIATE")
                c.execute("UPDATE acct SET bal = bal - 7 WHERE id = ?", (a,))
                c.execute("UPDATE acct SET bal = bal + 7 WHERE id = ?", (b,))
                c.execute("COMMIT")
                transfers += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not bad, f"torn reads on followers: {bad[:5]}"
    assert reads[0] > 10 and transfers > 10, (reads, transfers)
    want = qflib.dump(leader.path(db))
    for f in followers:
        wait_until(lambda: qflib.dump(f.path(db)) == want, 10,
                   f"{f.name} converges")
    same_everywhere(cluster, db)


def test_local_write_on_follower_fails(cluster):
    leader, follower = cluster[0], cluster[1]
    db = "ro.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\nINSERT INTO t "
              "VALUES (1);\n", mode="wal")
    wait_until(lambda: count(follower, db) == 1, VISIBLE_WITHIN, "row 1")
    r = qflib.cli(follower.path(db), "INSERT INTO t VALUES (2);\n",
                  check=False)
    assert r.returncode != 0, "a write on a follower's mount succeeded"
    assert "disk I/O error" in r.stderr, r.stderr
    assert count(follower, db) == 1
    assert count(leader, db) == 1
    # The leader still writes, and the follower still follows.
    qflib.cli(leader.path(db), "INSERT INTO t VALUES (3);\n")
    wait_until(lambda: count(follower, db) == 2, VISIBLE_WITHIN, "row 3")
    same_everywhere(cluster, db)


def test_follower_restart_catches_up(cluster):
    leader, follower = cluster[0], cluster[2]
    db = "cu.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\n", mode="wal")
    wait_until(lambda: count(follower, db) == 0, VISIBLE_WITHIN, "table")
    follower.stop()
    for i in range(50):
        qflib.cli(leader.path(db), f"INSERT INTO t VALUES ({i});\n")
    follower.start(bootstrap=False)  # a member: no --join
    wait_until(lambda: count(follower, db) == 50, VISIBLE_WITHIN,
               "caught up")
    qflib.cli(leader.path(db), "INSERT INTO t VALUES (50);\n")
    wait_until(lambda: count(follower, db) == 51, VISIBLE_WITHIN,
               "follows again")
    same_everywhere(cluster, db)


def find_leader(nodes, timeout=10.0):
    """The running node that `quorafs cluster list` names leader."""
    addrs = ",".join(n.address for n in nodes if n.alive())
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = qflib.run_quorafs(["cluster", "-s", addrs, "-t", "1", "list"])
        for ln in r.stdout.splitlines():
            if ln.endswith(" leader"):
                for n in nodes:
                    if n.alive() and ln.startswith(f"{n.id} "):
                        return n, time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"no leader among {addrs} within {timeout} s")


class Writer(threading.Thread):
    """Inserts unique ids through the current leader's mount; on an
    error it finds the leader again.  @acked: ids whose COMMIT returned."""

    def __init__(self, nodes, db):
        super().__init__(daemon=True)
        self.nodes, self.db = nodes, db
        self.acked, self.errors = [], 0
        self.last_error = None
        self.stop = threading.Event()

    def run(self):
        i = 1_000_000  # clear of rows a test inserted itself
        while not self.stop.is_set():
            try:
                leader, _ = find_leader(self.nodes)
                with contextlib.closing(sqlite3.connect(
                        str(leader.path(self.db)), timeout=5,
                        isolation_level=None)) as c:
                    while not self.stop.is_set():
                        i += 1
                        c.execute("INSERT INTO t(i) VALUES (?)", (i,))
                        self.acked.append(i)
            except (sqlite3.Error, AssertionError, OSError) as e:
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                time.sleep(0.05)


@pytest.mark.deadline(240)
@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_failover_keeps_every_acknowledged_write(cluster, timing, mode):
    """kill -9 of the leader under write load, three rounds: a new leader
    is elected, writes resume on its mount, every acknowledged insert is
    there, and the old leader restarts, rejoins and converges."""
    db = f"fo-{mode}.db"
    qflib.cli(cluster[0].path(db), "CREATE TABLE t(i INTEGER PRIMARY KEY);\n",
              mode=mode)
    for n in cluster[1:]:
        wait_until(lambda: count(n, db) == 0, VISIBLE_WITHIN, "table")
    w = Writer(cluster, db)
    w.start()
    failovers = []
    try:
        for _ in range(3):
            time.sleep(1.0)
            old, _ = find_leader(cluster)
            before = len(w.acked)
            old.kill9()
            t0 = time.monotonic()
            new, _ = find_leader(cluster)
            failovers.append(time.monotonic() - t0)
            assert new is not old
            wait_until(lambda: len(w.acked) > before + 10, 20,
                       "writes resume on the new leader")
            old.unmount_stale()
            old.start(bootstrap=False)
    finally:
        w.stop.set()
        w.join(timeout=30)
    leader, _ = find_leader(cluster)
    with contextlib.closing(sqlite3.connect(str(leader.path(db)))) as c:
        have = {r[0] for r in c.execute("SELECT i FROM t")}
    lost = [i for i in w.acked if i not in have]
    assert not lost, f"{len(lost)} acknowledged inserts lost: {lost[:10]}"
    want = qflib.dump(leader.path(db))
    for n in cluster:
        wait_until(lambda: qflib.dump(n.path(db)) == want, 20,
                   f"{n.name} converges")
    same_everywhere(cluster, db)
    timing(f"replication ({mode}): failover after kill -9 of the leader: "
           + ", ".join(f"{s:.2f} s" for s in failovers)
           + f"; {len(w.acked)} inserts acknowledged, {w.errors} client "
           "errors during failovers, none lost")


def test_verify_finds_a_corrupted_follower(cluster):
    """quorafs verify compares the nodes' states and reads every node's
    files through its mount: a follower's backing file changed behind
    quorafs's back (with the node down) is reported, exit 1."""
    leader, victim = cluster[0], cluster[2]
    db = "v.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\nINSERT INTO t VALUES "
              "(randomblob(3000));\n", mode="delete")
    wait_until(lambda: count(victim, db) == 1, VISIBLE_WITHIN, "row")
    assert verify(cluster).returncode == 0
    victim.stop()
    with open(victim.backing(db), "r+b") as f:
        f.seek(4096 + 100)
        f.write(b"corrupted by the test")
    victim.start(bootstrap=False)
    r = verify(cluster)
    assert r.returncode == 1, r.stdout
    assert f"{db}: the files on {victim.address}" in r.stdout, r.stdout


def corrupt_page(path, pgno, page_size=4096):
    """Overwrite part of page @pgno in a backing database file and in
    every frame of its -wal that holds that page."""
    junk = b"corrupted by the test" * 8
    with open(path, "r+b") as f:
        f.seek((pgno - 1) * page_size + 200)
        f.write(junk)
    wal = str(path) + "-wal"
    if not os.path.exists(wal):
        return
    with open(wal, "r+b") as f:
        data = f.read()
        off = 32
        while off + 24 + page_size <= len(data):
            if int.from_bytes(data[off:off + 4], "big") == pgno:
                f.seek(off + 24 + 200)
                f.write(junk)
            off += 24 + page_size


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_diverged_follower_resynchronises(cluster, mode):
    """A follower's backing file changed behind quorafs's back (with the
    node down) is caught by its applier when the next transaction
    overwrites that page: nothing is written into it, the database is
    marked diverged, the follower fetches the leader's image and installs
    it through its mount, and every node agrees again."""
    leader, victim = cluster[0], cluster[2]
    db = f"div-{mode}.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\nINSERT INTO t VALUES "
              "(randomblob(300));\n", mode=mode)
    wait_until(lambda: count(victim, db) == 1, VISIBLE_WITHIN, "row")
    victim.stop()
    corrupt_page(victim.backing(db), 2)  # t's only page
    victim.start(bootstrap=False)
    qflib.cli(leader.path(db), "INSERT INTO t VALUES (randomblob(300));\n",
              mode=mode)
    took = wait_until(lambda: "resynchronised (seq=" in victim.log(), 30,
                      "resynchronised")
    log = victim.log()
    assert "page 2 differs from the leader's" in log, victim.log_tail(30)
    assert "DIVERGED" in log, victim.log_tail(30)
    wait_until(lambda: count(victim, db) == 2, VISIBLE_WITHIN, "both rows")
    # It follows the log again: a later write arrives as usual.
    qflib.cli(leader.path(db), "INSERT INTO t VALUES (3);\n", mode=mode)
    wait_until(lambda: count(victim, db) == 3, VISIBLE_WITHIN, "row 3")
    same_everywhere(cluster, db)
    print(f"resynchronised {took:.2f} s after the write")


def test_diverged_leader_hands_leadership_over(cluster, monkeypatch):
    """A leader cannot repair its own diverged database (only a leader
    serves images) and refuses its writes: after 2 s it hands leadership
    to another voter, whose image then repairs it.  Here the victim is
    started with image fetches disabled (QF_FAULT_NO_RESYNC), so that it
    is still diverged when leadership is moved to it."""
    leader, victim = cluster[0], cluster[2]
    db = "lead-div.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\nINSERT INTO t VALUES "
              "(randomblob(300));\n", mode="wal")
    wait_until(lambda: count(victim, db) == 1, VISIBLE_WITHIN, "row")
    victim.stop()
    corrupt_page(victim.backing(db), 2)
    monkeypatch.setenv("QF_FAULT_NO_RESYNC", "1")
    victim.start(bootstrap=False)
    monkeypatch.delenv("QF_FAULT_NO_RESYNC")
    qflib.cli(leader.path(db), "INSERT INTO t VALUES (2);\n")
    wait_until(lambda: "DIVERGED" in victim.log(), 30, "victim diverged")
    r = qflib.run_quorafs(["cluster", "-s", leader.address, "transfer",
                           str(victim.id)])
    assert r.returncode == 0, r.stderr
    wait_until(lambda: "handing leadership to another voter" in
               victim.log(), 30, "the diverged leader hands over")
    deadline = time.monotonic() + 20
    new, _ = find_leader(cluster)
    while new is victim and time.monotonic() < deadline:
        time.sleep(0.2)
        new, _ = find_leader(cluster)
    assert new is not victim, victim.log_tail(20)
    deadline = time.monotonic() + 10
    while True:  # a new leader refuses writes until its log is applied
        try:
            qflib.cli(new.path(db), "INSERT INTO t VALUES (3);\n")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    wait_until(lambda: count(cluster[1] if new is cluster[0] else
                             cluster[0], db) == 3, VISIBLE_WITHIN, "row 3")
    # Without the fault, the victim's files are repaired (here: rebuilt
    # from snapshot and log at its start).
    victim.stop()
    victim.start(bootstrap=False)
    wait_until(lambda: count(victim, db) == 3, VISIBLE_WITHIN, "all rows")
    same_everywhere(cluster, db)


def test_resync_of_an_image_larger_than_a_message(qf):
    """With --max-message 65536 a 1 MB transaction reaches the followers'
    appliers in many link frames, and a follower resynchronises from the
    leader's image of the 1 MB database, sent in parts, as with a small
    one."""
    extra = ["--max-message", "65536"]
    nodes = start_cluster(qf, extra)
    leader, victim = nodes[0], nodes[2]
    db = "big.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\nINSERT INTO t VALUES "
              "(1);\nCREATE TABLE b(y);\nWITH RECURSIVE n(i) AS (SELECT 1 "
              "UNION ALL SELECT i + 1 FROM n WHERE i < 250) INSERT INTO b "
              "SELECT randomblob(4000) FROM n;\n", mode="delete")
    wait_until(lambda: count(victim, db) == 1, VISIBLE_WITHIN, "row")
    victim.stop()
    corrupt_page(victim.backing(db), 2)  # t's only page
    victim.start(bootstrap=False, extra=extra)
    qflib.cli(leader.path(db), "INSERT INTO t VALUES (2);\n", mode="delete")
    wait_until(lambda: "resynchronised (seq=" in victim.log(), 30,
               "resynchronised")
    for n in nodes[1:]:
        wait_until(lambda: count(n, db) == 2, VISIBLE_WITHIN, "both rows")
    assert count(victim, db, "b") == 250
    # (verify's DUMP of a 1 MB database exceeds this --max-message.)
    dumps = [qflib.dump(n.path(db)) for n in nodes]
    assert dumps[2] == dumps[0] and dumps[1] == dumps[0]
    assert qflib.integrity(victim.path(db)) == "ok"


def rss_kib(pid):
    """VmRSS of @pid and its descendants (the SQL worker), in KiB."""
    total = 0
    for p in [pid] + qflib.child_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


@pytest.mark.deadline(240)
def test_resync_memory_does_not_grow_with_the_database(qf, timing):
    """A follower resynchronising a 56 MB database: the leader writes its
    image to a scratch file and sends it in parts, the follower writes the
    parts to its own and the applier installs from it, so neither daemon
    (nor its SQL worker) holds the image: their memory stays far below
    the database's size while it moves."""
    nodes = start_cluster(qf, [])
    leader, victim = nodes[0], nodes[2]
    db = "huge.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\nINSERT INTO t VALUES "
              "(1);\nCREATE TABLE b(y);\n", mode="wal")
    with contextlib.closing(qflib.connect(leader.path(db))) as c:
        for _ in range(56):  # 1 MiB a transaction
            c.execute("INSERT INTO b VALUES (randomblob(1048576))")
    wait_until(lambda: count(victim, db, "b") == 56, 60, "replicated")
    victim.stop()
    corrupt_page(victim.backing(db), 2)  # t's only page
    victim.start(bootstrap=False)
    # The base: the most each used over 2 s (raft catching the restarted
    # follower up moves its own buffers meanwhile).
    base = {n.pid: 0 for n in (leader, victim)}
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2:
        for pid in base:
            base[pid] = max(base[pid], rss_kib(pid))
        time.sleep(0.002)
    peak = dict(base)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in peak:
                peak[pid] = max(peak[pid], rss_kib(pid))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    try:
        qflib.cli(leader.path(db), "INSERT INTO t VALUES (2);\n")
        wait_until(lambda: "resynchronised (seq=" in victim.log(), 90,
                   "resynchronised")
    finally:
        done.set()
        sampler.join()
    took = time.monotonic() - t0
    wait_until(lambda: count(victim, db) == 2, VISIBLE_WITHIN, "both rows")
    assert count(victim, db, "b") == 56
    assert qflib.integrity(victim.path(db)) == "ok"
    grew = {pid: (peak[pid] - base[pid]) >> 10 for pid in base}
    timing(f"resync of a 56 MB database in {took:.1f} s; memory growth "
           f"(daemon + SQL worker): leader {grew[leader.pid]} MiB, "
           f"follower {grew[victim.pid]} MiB")
    # Holding the image would add 56 MB (more, with copies).
    if not qflib.sanitized():
        assert max(grew.values()) < 24, grew
    r = qflib.run_quorafs(["verify", "-s",
                           ",".join(n.address for n in nodes)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert not list((victim.data_dir / "state").glob("%image-*"))
    assert not list((leader.data_dir / "state").glob("%image-*"))


@pytest.mark.deadline(120)
def test_dying_applier_is_respawned_at_most_once_a_second(cluster):
    """A follower's SQL worker (its applier) killed as soon as it appears,
    again and again, while the leader writes: the daemon starts a new one
    at most about once a second (one that dies on every transaction must
    not spin), keeps running, and catches up once a worker lives.  A
    transaction sent again to the new worker is not taken for a
    divergence."""
    leader, victim = cluster[0], cluster[2]
    db = "respawn.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\n", mode="wal")
    wait_until(lambda: count(victim, db) == 0, VISIBLE_WITHIN, "table")
    stop = threading.Event()
    written = [0]

    def writer():
        with contextlib.closing(qflib.connect(leader.path(db),
                                              mode="wal")) as c:
            while not stop.is_set():
                c.execute("INSERT INTO t VALUES (1)")
                written[0] += 1

    th = threading.Thread(target=writer)
    th.start()
    killed = set()
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 4:
            for p in qflib.child_pids(victim.pid):
                if p not in killed:
                    killed.add(p)
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.002)
    finally:
        stop.set()
        th.join()
    took = time.monotonic() - t0
    assert victim.alive()
    assert written[0] > 0
    assert 2 <= len(killed) <= took + 2, (len(killed), took)
    wait_until(lambda: count(victim, db) == written[0], 15, "caught up")
    assert "DIVERGED" not in victim.log(), victim.log_tail(30)
    same_everywhere(cluster, db)
    print(f"respawn: {len(killed)} workers killed in {took:.1f} s, "
          f"{written[0]} commits")


@pytest.mark.deadline(240)
def test_membership_snapshot_install_remove_transfer(qf, timing):
    """With a short log (snapshots every 64 entries, 64 kept): a 4th node
    added after 5,000 transactions catches up by snapshot install and
    joins as a stand-by; a node is removed; leadership is transferred
    while a writer runs, losing no acknowledged insert."""
    short_log = ["--snapshot-threshold", "64", "--snapshot-trailing", "64"]
    nodes = start_cluster(qf, short_log)
    n1 = nodes[0]
    db = "m.db"
    with contextlib.closing(qflib.connect(n1.path(db), mode="wal")) as c:
        c.execute("CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT)")
        t0 = time.monotonic()
        for i in range(5000):
            c.execute("INSERT INTO t VALUES (?, 'x')", (i,))
        took = time.monotonic() - t0
    n4 = qf.node("n4", node_id=4)
    join_s = n4.start(bootstrap=False, extra=["--join", n1.address]
                      + short_log)
    assert "snapshot index=" in n4.log(), n4.log_tail(20)
    wait_until(lambda: count(n4, db) == 5000, VISIBLE_WITHIN, "n4 has all")
    nodes.append(n4)
    out = qflib.run_quorafs(["cluster", "-s", n1.address, "list"]).stdout
    assert "4 " + n4.address + " stand-by" in out, out
    same_everywhere(nodes, db)
    for n in nodes:  # followers snapshot their WAL-mode files too
        assert "snapshot: db=" not in n.log(), n.log_tail(10)
    timing(f"replication: 5000 single-row commits through the leader's "
           f"mount in {took:.1f} s; a 4th node joined by snapshot install "
           f"in {join_s:.2f} s")

    r = qflib.run_quorafs(["cluster", "-s", n1.address, "remove", "2"])
    assert r.returncode == 0, r.stderr
    out = qflib.run_quorafs(["cluster", "-s", n1.address, "list"]).stdout
    assert not any(ln.startswith("2 ") for ln in out.splitlines()), out
    nodes[1].stop()
    nodes = [n1, nodes[2], n4]

    w = Writer(nodes, db)
    w.start()
    try:
        try:
            wait_until(lambda: len(w.acked) > 20, 20, "writer running")
        except AssertionError:
            raise AssertionError(f"the writer is stuck: {w.errors} errors, "
                                 f"last: {w.last_error}")
        r = qflib.run_quorafs(["cluster", "-s", n1.address, "transfer", "3"])
        assert r.returncode == 0, r.stderr
        leader, _ = find_leader(nodes)
        deadline = time.monotonic() + 10
        while leader.id != 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            leader, _ = find_leader(nodes)
        assert leader.id == 3, f"leader is {leader.id} after transfer"
        before = len(w.acked)
        wait_until(lambda: len(w.acked) > before + 20, 20,
                   "writes go on after the transfer")
    finally:
        w.stop.set()
        w.join(timeout=30)
    with contextlib.closing(sqlite3.connect(str(leader.path(db)))) as c:
        have = {r[0] for r in c.execute("SELECT i FROM t")}
    lost = [i for i in w.acked if i not in have]
    assert not lost, f"{len(lost)} acknowledged inserts lost: {lost[:10]}"
    same_everywhere(nodes, db)


def test_recover_after_losing_quorum(cluster):
    """Two of three nodes are gone for good: `quorafs recover` forces the
    survivor's log to a one-voter membership; it then starts alone, leads,
    keeps every committed row and takes writes.  A running node and a
    missing --yes are refused."""
    n1 = cluster[0]
    db = "rec.db"
    qflib.cli(n1.path(db), "CREATE TABLE t(x);\nINSERT INTO t VALUES (1);\n",
              mode="wal")
    members = ["--members", f"1={n1.address}"]
    r = qflib.run_quorafs(["recover", "--data-dir", n1.data_dir, *members,
                           "--yes"])
    assert r.returncode == 1 and "stop it first" in r.stderr, r.stderr
    for n in cluster:
        n.stop()
    r = qflib.run_quorafs(["recover", "--data-dir", n1.data_dir, *members])
    assert r.returncode == 2 and "--yes" in r.stderr, r.stderr
    r = qflib.run_quorafs(["recover", "--data-dir", n1.data_dir, *members,
                           "--yes"])
    assert r.returncode == 0, r.stderr
    n1.start(bootstrap=False)
    assert qflib.cli(n1.path(db), "INSERT INTO t VALUES (2);\n"
                     "SELECT count(*) FROM t;\n").strip() == "2"
    out = qflib.run_quorafs(["cluster", "-s", n1.address, "list"]).stdout
    assert out.strip().splitlines() == [
        l for l in out.strip().splitlines() if l.startswith("1 ")], out
    assert "leader" in out, out


@pytest.mark.deadline(180)
def test_leader_with_a_full_disk_steps_down(qf, tmp_path):
    """The leader's data dir is a 20 MiB tmpfs and its raft log is never
    compacted: once the log cannot grow, the commit in flight fails (EIO)
    and the leader hands leadership to another voter, whose mount then
    takes the writes."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs",
                    str(small)], check=True)
    qf.track_mount(small)
    n1 = qf.node("n1", node_id=1)
    n1.data_dir = small / "n1-data"
    never = ["--snapshot-threshold", "1000000", "--snapshot-trailing",
             "1000000"]
    n1.start(extra=never)
    nodes = [n1]
    for i in (2, 3):
        n = qf.node(f"n{i}", node_id=i)
        n.start(bootstrap=False, extra=["--join", n1.address])
        nodes.append(n)
    db = "full.db"
    err, updates = None, 0
    with contextlib.closing(qflib.connect(n1.path(db), mode="wal")) as c:
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        c.execute("INSERT INTO t VALUES (1, zeroblob(3000))")
        t_end = time.monotonic() + 90
        while err is None and time.monotonic() < t_end:
            try:
                c.execute("UPDATE t SET v = randomblob(3000) WHERE id = 1")
                updates += 1
            except sqlite3.Error as e:
                err = e
    assert err is not None, f"{updates} updates and the disk never filled"
    assert "disk I/O error" in str(err), err
    new = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        new, _ = find_leader(nodes)
        if new is not n1:
            break
        time.sleep(0.1)
    assert new is not n1, "the leader with a full disk kept leadership"
    assert "handing leadership" in n1.log(), n1.log_tail(20)

    def write_on_new_leader():
        # Raft names the leader before it has applied its whole log and
        # takes writes (a refused write is retried, as clients do).
        with contextlib.closing(qflib.connect(new.path(db))) as c:
            c.execute("UPDATE t SET v = x'00' WHERE id = 1")
            return c.execute("SELECT v FROM t").fetchone()[0] == b"\x00"
    wait_until(write_on_new_leader, 10, "a write on the new leader")


def test_wire_client_on_a_follower_is_forwarded(cluster):
    """A wire-protocol client that connects to a follower without looking
    for the leader (no LEADER round): its connection is forwarded to the
    leader whole, so its writes commit, and a large streamed result comes
    back intact through the forwarder."""
    import sys
    sys.path.insert(0, str(qflib.REPO / "tools"))
    import qfwire
    follower = cluster[2]
    with contextlib.closing(qfwire.Conn(follower.address)) as c:
        c.open("fw.db")
        c.exec_sql("CREATE TABLE t(x INTEGER)")
        assert c.exec_sql("INSERT INTO t VALUES (?)", (42,)) == (1, 1)
        names, rows = c.query_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < 200000) SELECT i, printf('%040d', i) FROM n")
        assert len(rows) == 200000 and rows[-1] == (200000, "%040d" % 200000)
    for n in cluster:
        wait_until(lambda: count(n, "fw.db") == 1, VISIBLE_WITHIN,
                   f"the forwarded write on {n.name}")
    assert "forwarding" not in cluster[0].log()  # the leader serves it


@pytest.mark.deadline(120)
def test_long_reader_on_a_follower_delays_but_never_breaks(cluster):
    """A rollback-journal database: a reader on a follower holds a read
    transaction (SHARED lock) for 12 s.  The applier waits for it, as a
    local writer would, and then applies; the follower does not give up
    on the database (it used to after 10 s)."""
    leader, follower = cluster[0], cluster[1]
    db = "lr.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(x);\n", mode="delete")
    wait_until(lambda: count(follower, db) == 0, VISIBLE_WITHIN, "table")
    r = sqlite3.connect(str(follower.path(db)), isolation_level=None)
    try:
        r.execute("BEGIN")
        assert r.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        qflib.cli(leader.path(db), "INSERT INTO t VALUES (1);\n")
        time.sleep(12)
        assert r.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        r.execute("COMMIT")
    finally:
        r.close()
    wait_until(lambda: count(follower, db) == 1, VISIBLE_WITHIN,
               "applied once the reader is done")
    qflib.cli(leader.path(db), "INSERT INTO t VALUES (2);\n")
    wait_until(lambda: count(follower, db) == 2, VISIBLE_WITHIN,
               "still following")
    assert "waited 10 s for local readers" in follower.log()
    same_everywhere(cluster, db)


def test_journal_mode_changes_replicate(cluster):
    """DELETE -> WAL -> TRUNCATE -> WAL between transactions: followers
    switch with the leader (a full checkpoint before leaving WAL) and end
    identical."""
    leader, followers = cluster[0], cluster[1:]
    db = "modes.db"
    qflib.cli(leader.path(db), "CREATE TABLE t(i INTEGER, v TEXT);\n",
              mode="delete")
    n = 0
    for mode in ("wal", "truncate", "wal", "delete"):
        got = qflib.cli(leader.path(db), f"PRAGMA journal_mode={mode};\n")
        assert got.strip() == mode, got
        for _ in range(5):
            n += 1
            qflib.cli(leader.path(db), f"INSERT INTO t VALUES ({n}, "
                      f"'{mode} ' || hex(randomblob(200)));\n")
        for f in followers:
            wait_until(lambda: count(f, db) == n, VISIBLE_WITHIN,
                       f"{n} rows on {f.name} after {mode}")
            # Only WAL is recorded in the file; a new connection opens
            # any rollback-journal database in DELETE mode.
            assert qflib.cli(f.path(db), "PRAGMA journal_mode;\n").strip() \
                == ("wal" if mode == "wal" else "delete")
    same_everywhere(cluster, db)


def test_image_request(cluster):
    """quorafs's IMAGE request, what a diverged follower fetches: the
    leader sends every page of a database at its current state, in parts
    of about 1 MiB (no message holds the whole database); a follower
    answers that it is not the leader; an unknown database is refused."""
    import struct
    import sys
    sys.path.insert(0, str(qflib.REPO / "tools"))
    import qfwire
    leader, follower = cluster[0], cluster[1]
    qflib.cli(leader.path("img.db"), "CREATE TABLE t(x);\nINSERT INTO t "
              "VALUES (randomblob(1500000));\n", mode="wal")
    image = 101  # request and response type
    parts, got = [], b""
    with contextlib.closing(qfwire.Conn(leader.address)) as c:
        c.send(image, qfwire.enc_text("img.db"))
        while True:
            body = c.expect(image)
            seq, cksum, page_size, pages, first, n = \
                struct.unpack_from("<6Q", body)
            assert first == len(got) // 4096 + 1, (first, len(got))
            assert len(body) == 48 + page_size * n
            assert len(body) <= (1 << 20) + 48
            parts.append((seq, cksum, page_size, pages))
            got += body[48:]
            if first + n - 1 == pages:
                break
    assert page_size == 4096 and pages >= 300, (page_size, pages)
    assert len(parts) >= 2 and len(set(parts)) == 1, parts
    assert len(got) == page_size * pages
    assert got[:16] == b"SQLite format 3\0"
    assert seq >= 2
    with contextlib.closing(qfwire.Conn(follower.address)) as c:
        with pytest.raises(qfwire.Failure) as e:
            c.call(image, qfwire.enc_text("img.db"), image)
    assert e.value.code == 10250, e.value
    with contextlib.closing(qfwire.Conn(leader.address)) as c:
        with pytest.raises(qfwire.Failure) as e:
            c.call(image, qfwire.enc_text("nothere.db"), image)
    assert "no such database" in str(e.value), e.value


def test_stalled_image_reader_frees_the_leader(cluster):
    """A follower that asks for an image and then stops reading keeps the
    leader's one image slot (others are told "busy") only until its
    connection has taken nothing for 10 s: then the leader closes it, and
    the next request gets the whole image."""
    import socket
    import struct
    import sys
    sys.path.insert(0, str(qflib.REPO / "tools"))
    import qfwire
    leader = cluster[0]
    qflib.cli(leader.path("big.db"), "CREATE TABLE t(x);\n"
              "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
              "FROM c WHERE i < 24) INSERT INTO t SELECT randomblob(1000000) "
              "FROM c;\n", mode="wal")
    image = 101
    stalled = qfwire.Conn(leader.address)
    try:
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        stalled.send(image, qfwire.enc_text("big.db"))  # and never read
        t0 = time.monotonic()
        while True:
            try:
                with contextlib.closing(qfwire.Conn(leader.address)) as c:
                    c.send(image, qfwire.enc_text("big.db"))
                    got = 0
                    while True:
                        body = c.expect(image)
                        _, _, page_size, pages, first, n = \
                            struct.unpack_from("<6Q", body)
                        got += n
                        if first + n - 1 == pages:
                            break
                    assert got == pages and pages * page_size > 24_000_000
                    break
            except qfwire.Failure as e:
                assert e.code == 5 and "busy" in str(e), e
            waited = time.monotonic() - t0
            assert waited < 40, "the stalled reader kept the image slot"
            time.sleep(0.5)
        assert waited >= 5, f"served after {waited:.1f} s: was it stalled?"
        assert "the follower stopped reading it" in leader.log()
        # The stalled connection was closed: past what was buffered, EOF.
        stalled.sock.settimeout(10)
        with pytest.raises(qfwire.WireError):
            while True:
                stalled.expect(image)
    finally:
        stalled.close()
