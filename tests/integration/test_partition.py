"""A network partition of the leader, with network namespaces the test
creates: a hub namespace holds a bridge; each node runs in a namespace of
its own (joined with nsenter, so its mount stays visible to the test) with
a veth to the bridge.  Cutting a node's veth isolates it.

Asserted: the isolated leader's commits fail (EIO, "disk I/O error")
within a few election timeouts instead of hanging or succeeding; the
majority elects a leader whose mount takes writes; after healing, the old
leader rejoins as a follower, every acknowledged write is on every node
and `quorafs verify` finds the nodes identical."""
import contextlib
import os
import sqlite3
import subprocess
import time

import pytest

import qflib
from test_replication import count, wait_until

SUBNET = "10.77.{}.{}"


class Namespaces:
    """A hub namespace with a bridge, and one namespace per node with a
    veth to it.  Names carry the test process's pid: no clash with
    another run.  remove() deletes them all (the veths go with them)."""

    def __init__(self, n, net):
        self.tag = f"qf{os.getpid() % 100000}"
        self.net = net
        self.hub = f"{self.tag}hub"
        self.nodes = [f"{self.tag}n{i}" for i in range(1, n + 1)]
        self.created = []
        try:
            self._setup()
        except Exception:
            self.remove()
            raise

    def ip(self, *args):
        subprocess.run(["ip", *args], check=True, capture_output=True,
                       timeout=10)

    def _setup(self):
        self.ip("netns", "add", self.hub)
        self.created.append(self.hub)
        self.ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        self.ip("-n", self.hub, "addr", "add",
                SUBNET.format(self.net, 254) + "/24", "dev", "br0")
        self.ip("-n", self.hub, "link", "set", "br0", "up")
        self.ip("-n", self.hub, "link", "set", "lo", "up")
        for i, ns in enumerate(self.nodes, start=1):
            self.ip("netns", "add", ns)
            self.created.append(ns)
            self.ip("-n", ns, "link", "set", "lo", "up")
            self.ip("-n", self.hub, "link", "add", f"v{i}", "type", "veth",
                    "peer", "name", "eth0", "netns", ns)
            self.ip("-n", self.hub, "link", "set", f"v{i}", "master", "br0")
            self.ip("-n", self.hub, "link", "set", f"v{i}", "up")
            self.ip("-n", ns, "addr", "add",
                    SUBNET.format(self.net, i) + "/24", "dev", "eth0")
            self.ip("-n", ns, "link", "set", "eth0", "up")

    def address(self, i, port):
        return f"{SUBNET.format(self.net, i)}:{port}"

    def enter(self, ns):
        return ["nsenter", f"--net=/run/netns/{ns}"]

    def cut(self, i):
        self.ip("-n", self.hub, "link", "set", f"v{i}", "down")

    def heal(self, i):
        self.ip("-n", self.hub, "link", "set", f"v{i}", "up")

    def remove(self):
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True,
                           timeout=10)
        self.created = []


@pytest.fixture
def netns():
    for tool in ("nsenter", "ip"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            pytest.fail(f"{tool} is missing: run tools/install-deps.sh")
    try:
        ns = Namespaces(3, net=os.getpid() % 200 + 1)
    except subprocess.CalledProcessError as e:
        # A container without CAP_NET_ADMIN cannot make namespaces.
        pytest.skip(f"cannot create network namespaces here: "
                    f"{e.stderr.decode(errors='replace').strip()}")
    yield ns
    ns.remove()


class NsNode:
    """Starts a qflib.Node inside namespace @ns, at @address."""

    @staticmethod
    def start(node, ns, nsenter, address, bootstrap, extra=()):
        node.address = address
        args = nsenter + node.args(bootstrap=bootstrap, extra=extra)
        t0 = time.monotonic()
        node.launch(args)
        node.wait_ready(qflib.READY_TIMEOUT, t0)


def in_hub(netns, args, timeout=60):
    return subprocess.run(netns.enter(netns.hub) + [qflib.quorafs_bin()]
                          + args, capture_output=True, text=True,
                          timeout=timeout)


def leader_id(netns, nodes, alive=None):
    addrs = ",".join(n.address for n in (alive or nodes))
    r = in_hub(netns, ["cluster", "-s", addrs, "-t", "2", "list"])
    for ln in r.stdout.splitlines():
        if ln.endswith(" leader"):
            return int(ln.split()[0])
    return None


@pytest.mark.deadline(240)
def test_partitioned_leader(qf, netns, timing):
    nodes = [qf.node(f"n{i}", node_id=i) for i in (1, 2, 3)]
    NsNode.start(nodes[0], netns, netns.enter(netns.nodes[0]),
                 netns.address(1, nodes[0].port), True)
    for i in (2, 3):
        NsNode.start(nodes[i - 1], netns, netns.enter(netns.nodes[i - 1]),
                     netns.address(i, nodes[i - 1].port), False,
                     ["--join", nodes[0].address])
    assert leader_id(netns, nodes) == 1
    db = "p.db"
    qflib.cli(nodes[0].path(db), "CREATE TABLE t(i INTEGER PRIMARY KEY);\n"
              "INSERT INTO t VALUES (1);\n", mode="wal")
    for n in nodes[1:]:
        wait_until(lambda: count(n, db) == 1, 5, f"row 1 on {n.name}")

    netns.cut(1)
    t0 = time.monotonic()
    # The isolated leader must refuse, not hang and not succeed.
    r = qflib.cli(nodes[0].path(db), "INSERT INTO t VALUES (2);\n",
                  check=False, timeout=60)
    refused_after = time.monotonic() - t0
    assert r.returncode != 0, "the isolated leader acknowledged a write"
    assert "disk I/O error" in r.stderr, r.stderr
    # The majority elects a leader and takes writes.
    new = None
    while new is None and time.monotonic() - t0 < 20:
        new = leader_id(netns, nodes, alive=nodes[1:])
        time.sleep(0.1)
    elected_after = time.monotonic() - t0
    assert new in (2, 3), f"no leader on the majority side ({new})"
    leader = nodes[new - 1]
    with contextlib.closing(qflib.connect(leader.path(db))) as c:
        for i in range(3, 53):
            c.execute("INSERT INTO t VALUES (?)", (i,))
    assert count(nodes[0], db) == 1  # the minority sees nothing new

    netns.heal(1)
    wait_until(lambda: count(nodes[0], db) == 51, 20,
               "the old leader catches up")
    with contextlib.closing(sqlite3.connect(str(leader.path(db)))) as c:
        have = sorted(r[0] for r in c.execute("SELECT i FROM t"))
    assert have == [1] + list(range(3, 53)), have[:10]
    r = in_hub(netns, ["verify", "-s", ",".join(n.address for n in nodes)])
    assert r.returncode == 0, r.stdout + r.stderr
    for n in nodes:
        assert qflib.integrity(n.path(db)) == "ok", n.name
    timing(f"partition: the isolated leader refused a commit after "
           f"{refused_after:.2f} s; `cluster list` showed a majority leader after "
           f"{elected_after:.2f} s")


@pytest.mark.deadline(240)
def test_cut_off_follower_installs_a_snapshot(qf, netns):
    """A follower cut off while the leader commits 300 transactions per
    database, with a log that keeps 64 entries past each snapshot: once
    healed it is too far behind for the log, so raft sends it a snapshot,
    which it installs through its running mount (WAL and DELETE
    databases); it then follows on and verify finds the nodes identical."""
    short_log = ["--snapshot-threshold", "64", "--snapshot-trailing", "64"]
    nodes = [qf.node(f"n{i}", node_id=i) for i in (1, 2, 3)]
    NsNode.start(nodes[0], netns, netns.enter(netns.nodes[0]),
                 netns.address(1, nodes[0].port), True, short_log)
    for i in (2, 3):
        NsNode.start(nodes[i - 1], netns, netns.enter(netns.nodes[i - 1]),
                     netns.address(i, nodes[i - 1].port), False,
                     ["--join", nodes[0].address] + short_log)
    lag = nodes[2]
    dbs = (("sw.db", "wal"), ("sd.db", "delete"))
    for db, mode in dbs:
        qflib.cli(nodes[0].path(db), "CREATE TABLE t(i INTEGER PRIMARY KEY,"
                  " v TEXT);\nINSERT INTO t VALUES (0, 'x');\n", mode=mode)
        wait_until(lambda: count(lag, db) == 1, 5, db)
    netns.cut(3)
    for db, _ in dbs:
        with contextlib.closing(qflib.connect(nodes[0].path(db))) as c:
            for i in range(1, 301):
                c.execute("INSERT INTO t VALUES (?, hex(randomblob(40)))",
                          (i,))
    assert count(lag, "sw.db") == 1  # it saw nothing meanwhile
    # A new leadership term: the leader's view of the follower's log
    # restarts at what it last acknowledged (TCP would otherwise deliver
    # the queued entries once the link is back).
    nodes[0].stop()
    NsNode.start(nodes[0], netns, netns.enter(netns.nodes[0]),
                 netns.address(1, nodes[0].port), False, short_log)
    netns.heal(3)
    for db, _ in dbs:
        wait_until(lambda: count(lag, db) == 301, 60, f"{db} caught up")
    assert "installing snapshot" in lag.log(), lag.log_tail(20)
    leader = nodes[leader_id(netns, nodes) - 1]
    qflib.cli(leader.path("sw.db"), "INSERT INTO t VALUES (1000, 'z');\n")
    wait_until(lambda: count(lag, "sw.db") == 302, 5, "follows on")
    r = in_hub(netns, ["verify", "-s", ",".join(n.address for n in nodes)])
    assert r.returncode == 0, r.stdout + r.stderr
    for db, _ in dbs:
        assert qflib.integrity(lag.path(db)) == "ok", db
