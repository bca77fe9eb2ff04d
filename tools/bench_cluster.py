#!/usr/bin/env python3
"""quorafs bench --cluster: commits through a 3-node quorafs cluster.

One invocation starts a 3-node quorafs cluster on loopback (node 1 with
--bootstrap, nodes 2 and 3 with --join, random free ports, data dirs and
mount points in a scratch directory on the current directory's filesystem)
and measures, with Python's sqlite3 module, WAL mode and
PRAGMA synchronous=FULL:

  raw      single-row autocommit INSERTs of a random 1 KiB blob into
           t(id INTEGER PRIMARY KEY, v BLOB) in a database on a plain
           directory of that same filesystem (the baseline);
  1 writer the same workload through the leader's mount (every commit is
           replicated to a quorum before it returns);
  8 writers eight processes, each with its own connection (busy_timeout
           10 s), inserting into the same table through the leader's mount;
  lag      while one writer inserts through the leader's mount, one reader
           process per follower polls SELECT max(id) FROM t on that
           follower's (read-only) mount about every 5 ms; for every id the
           writer committed in the measured window, the lag is the time from
           its commit returning to the first poll on the follower that saw
           it (CLOCK_MONOTONIC, shared by all processes on this machine).

Every measurement uses its own database (raw.db, w1.db, w8.db, lag.db) and
runs in worker processes (this script re-run with an internal option), each
warming up for --warmup seconds before it measures for --duration seconds.
The report gives txn/s, p50/p99 commit latency, errors, the quorafs/raw
ratio and the lag per follower, plus the targets (>= 1,500 txn/s with one
writer; >= 40% of raw synchronous=FULL), which are reported, not asserted.

Exit status: 0 when the benchmark ran, 1 when it could not run (the log
tail of a failing daemon is printed), 130 when interrupted.  The daemons
are always stopped (SIGTERM by pid, SIGKILL after 15 s) and their mounts
unmounted; the scratch directory is removed unless --keep.
"""

import argparse
import json
import os
import random
import select
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import is_mounted, mounts, remove_workdir  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

TARGET_TXN_1W = 1500.0   # txn/s through the mount, 1 writer
TARGET_RATIO = 0.40      # mount/raw txn/s, synchronous=FULL
NODES = 3
WRITERS = 8
VALUE_SIZE = 1024
POLL_S = 0.005
START_TIMEOUT = 30.0


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


def log(msg):
    print("bench-cluster: " + msg, file=sys.stderr, flush=True)


def pct(sorted_xs, p):
    if not sorted_xs:
        return None
    k = min(len(sorted_xs) - 1, max(0, int(round(p / 100.0 *
                                                  (len(sorted_xs) - 1)))))
    return sorted_xs[k]


# --------------------------------------------------------------------------
# workers: run as `bench_cluster.py --_worker JSON` in their own process

def connect(path, readonly=False):
    if readonly:
        c = sqlite3.connect("file:%s?mode=ro" % path, uri=True,
                            isolation_level=None, timeout=10)
    else:
        c = sqlite3.connect(path, isolation_level=None, timeout=10)
    c.execute("PRAGMA busy_timeout=10000")
    return c


def worker_setup(spec):
    c = connect(spec["db"])
    mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise BenchError("journal_mode=WAL gave %r" % mode)
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    c.close()
    return {"ok": True}


def wait_go():
    """Prints ready, then waits for 'go T_START T_END' on stdin."""
    print(json.dumps({"ready": True}), flush=True)
    line = sys.stdin.readline().split()
    if len(line) != 3 or line[0] != "go":
        raise BenchError("expected 'go T_START T_END', got %r" % line)
    return float(line[1]), float(line[2])


def worker_write(spec):
    """Autocommit single-row INSERTs until T_END; latencies of the commits
    that finished inside [T_START, T_END]."""
    c = connect(spec["db"])
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    rnd = random.Random(os.getpid() ^ int(time.time() * 1e6))
    record = spec.get("record_ids", False)
    t_start, t_end = wait_go()
    lats, ids = [], []
    errors, err_msgs, total = 0, {}, 0
    mono = time.monotonic
    while True:
        v = rnd.randbytes(VALUE_SIZE)
        t0 = mono()
        if t0 >= t_end:
            break
        try:
            cur = c.execute("INSERT INTO t(v) VALUES(?)", (v,))
            t1 = mono()
        except sqlite3.Error as e:
            t1 = mono()
            if t_start <= t1 <= t_end:
                errors += 1
                k = "%s: %s" % (type(e).__name__, e)
                err_msgs[k] = err_msgs.get(k, 0) + 1
            time.sleep(0.001)
            continue
        total += 1
        if t_start <= t1 <= t_end:
            lats.append(t1 - t0)
            if record:
                ids.append((cur.lastrowid, t1))
    c.close()
    res = {"n": len(lats), "lat": lats, "errors": errors,
           "error_kinds": err_msgs, "total": total}
    if record:
        res["ids"] = ids
    return res


def worker_read(spec):
    """Polls SELECT max(id) FROM t every ~5 ms on a follower's mount until
    'stop MAXID' arrives on stdin and MAXID has been seen (or 'stop' + 10 s).
    Returns the (time, max id) pairs at which max id changed."""
    path = spec["db"]
    deadline = time.monotonic() + spec.get("open_timeout", 30)
    c = None
    while c is None:
        try:
            if os.path.exists(path):
                c = connect(path, readonly=True)
                c.execute("SELECT max(id) FROM t").fetchone()
                break
        except sqlite3.Error:
            if c is not None:
                c.close()
            c = None
        if time.monotonic() > deadline:
            raise BenchError("%s has no table t after %d s"
                             % (path, spec.get("open_timeout", 30)))
        time.sleep(0.05)
    print(json.dumps({"ready": True}), flush=True)
    mono = time.monotonic
    seen = []      # [(t, max id)] on change
    last = None
    polls, errors = 0, 0
    stop_id, stop_deadline = None, None
    stdin = sys.stdin.fileno()
    buf = b""
    while True:
        try:
            m = c.execute("SELECT max(id) FROM t").fetchone()[0]
            t = mono()
            polls += 1
            if m is not None and m != last:
                seen.append((t, m))
                last = m
        except sqlite3.Error:
            errors += 1
        if stop_id is not None and ((last is not None and last >= stop_id)
                                    or mono() > stop_deadline):
            break
        r, _, _ = select.select([stdin], [], [], POLL_S)
        if r:
            chunk = os.read(stdin, 4096)
            if not chunk:   # coordinator went away
                break
            buf += chunk
            if b"\n" in buf:
                words = buf.split(b"\n")[0].split()
                if words and words[0] == b"stop":
                    stop_id = int(words[1]) if len(words) > 1 else 0
                    stop_deadline = mono() + 10
    c.close()
    return {"seen": seen, "polls": polls, "errors": errors}


WORKERS = {"setup": worker_setup, "write": worker_write, "read": worker_read}


# --------------------------------------------------------------------------
# mounts and processes

def is_fuse_mount(path):
    path = os.path.realpath(path)
    return any(mp == path and t.startswith("fuse") for mp, t, _ in mounts())


def free_ports(n):
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)\n"


class Node:
    def __init__(self, wd, nid, port):
        self.id = nid
        self.dir = os.path.join(wd, "n%d" % nid)
        self.data = os.path.join(self.dir, "data")
        self.mnt = os.path.join(self.dir, "mnt")
        self.log = os.path.join(self.dir, "daemon.log")
        self.addr = "127.0.0.1:%d" % port
        self.proc = None

    def start(self, quorafs, join=None, extra=()):
        os.makedirs(self.mnt)
        cmd = [quorafs, "mount", "--data-dir", self.data, "--mount",
               self.mnt, "--id", str(self.id), "--address", self.addr]
        cmd += ["--join", join] if join else ["--bootstrap"]
        cmd += list(extra)
        log("node %d: %s" % (self.id, " ".join(cmd)))
        with open(self.log, "w") as logf:
            try:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=logf,
                    stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as e:
                raise BenchError("cannot run %s: %s" % (quorafs, e))

    def fail(self, why):
        return BenchError("node %d %s; last 30 lines of its log:\n%s"
                          % (self.id, why, tail(self.log)))

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, errors="replace") as f:
                if "ready:" in f.read():
                    break
            if self.proc.poll() is not None:
                raise self.fail("exited with status %d before it was ready"
                                % self.proc.returncode)
            if time.monotonic() > deadline:
                raise self.fail("did not print 'ready:' within %d s"
                                % timeout)
            time.sleep(0.05)
        if not is_fuse_mount(self.mnt):
            raise self.fail("says ready but %s is not a FUSE mount"
                            % self.mnt)

    def check(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise self.fail("exited with status %d during the benchmark"
                            % self.proc.returncode)

    def stop(self):
        """Never raises; returns a list of problems."""
        problems = []
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    problems.append("node %d (pid %d) ignored SIGTERM for "
                                    "15 s; killed it" % (self.id, p.pid))
                    p.kill()
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        problems.append("node %d (pid %d) did not die"
                                        % (self.id, p.pid))
            except OSError as e:
                problems.append("stopping node %d: %s" % (self.id, e))
        if os.path.isdir(self.mnt) and is_mounted(self.mnt):
            for cmd in (["fusermount3", "-u", "-z", self.mnt],
                        ["umount", "-l", self.mnt]):
                try:
                    subprocess.run(cmd, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=15)
                except (OSError, subprocess.TimeoutExpired):
                    continue
                if not is_mounted(self.mnt):
                    break
            if is_mounted(self.mnt):
                problems.append("could not unmount " + self.mnt)
        return problems


class Cluster:
    def __init__(self, quorafs, wd, extra=()):
        self.quorafs = quorafs
        self.wd = wd
        self.extra = list(extra)
        self.nodes = []

    def start(self):
        ports = free_ports(NODES)
        self.nodes = [Node(self.wd, i + 1, ports[i]) for i in range(NODES)]
        first = self.nodes[0]
        first.start(self.quorafs, extra=self.extra)
        first.wait_ready()
        for n in self.nodes[1:]:
            n.start(self.quorafs, join=first.addr, extra=self.extra)
        for n in self.nodes[1:]:
            n.wait_ready()
        # Wait until all three are voters and there is a leader.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            members = self.members()
            voters = [m for m in members if m["role"] == "voter"]
            leaders = [m for m in members if m["leader"]]
            if len(voters) == NODES and leaders:
                break
            for n in self.nodes:
                n.check()
            if time.monotonic() > deadline:
                raise BenchError("the cluster did not get %d voters and a "
                                 "leader within %d s: %r"
                                 % (NODES, START_TIMEOUT, members))
            time.sleep(0.2)
        self.membership = members
        return members

    def members(self):
        try:
            r = subprocess.run([self.quorafs, "cluster", "-s",
                                self.nodes[0].addr, "list"],
                               stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return []
        res = []
        for line in r.stdout.splitlines():
            w = line.split()
            if len(w) >= 3 and w[0].isdigit():
                res.append({"id": int(w[0]), "address": w[1], "role": w[2],
                            "leader": "leader" in w[3:]})
        return res

    def node(self, nid):
        for n in self.nodes:
            if n.id == nid:
                return n
        raise BenchError("no node %d" % nid)

    def check(self):
        for n in self.nodes:
            n.check()

    def stop(self):
        problems = []
        # Followers first, so the leader is not left electing; each by pid.
        for n in reversed(self.nodes):
            problems += n.stop()
        return problems


# --------------------------------------------------------------------------
# the coordinator

class Workers:
    """Worker processes of this script, tracked so that they are killed on
    the way out."""

    def __init__(self):
        self.procs = []

    def spawn(self, kind, spec):
        spec = dict(spec, kind=kind)
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                              "--_worker", json.dumps(spec)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        p.kind = kind
        self.procs.append(p)
        return p

    def expect_ready(self, p, timeout, cluster=None):
        deadline = time.monotonic() + timeout
        while True:
            r, _, _ = select.select([p.stdout], [], [], 0.2)
            if r:
                line = p.stdout.readline()
                if '"ready"' in line:
                    return
                self.fail(p, "said %r instead of ready" % line)
            if p.poll() is not None:
                self.fail(p, "exited with status %d before it was ready"
                          % p.returncode)
            if cluster is not None:
                cluster.check()
            if time.monotonic() > deadline:
                self.fail(p, "was not ready within %d s" % timeout)

    def fail(self, p, why):
        err = ""
        if p.poll() is not None:
            err = p.stderr.read()
        raise BenchError("%s worker %s%s" % (p.kind, why,
                                             (": " + err.strip()) if err
                                             else ""))

    def result(self, p, timeout, cluster=None):
        deadline = time.monotonic() + timeout
        while p.poll() is None:
            if cluster is not None:
                cluster.check()
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise BenchError("%s worker did not finish within %d s "
                                 "(a hung mount?)" % (p.kind, timeout))
            # Drain stdout as it comes so that a large result cannot block.
            try:
                out, err = p.communicate(timeout=0.5)
                p._out, p._err = out, err
            except subprocess.TimeoutExpired:
                pass
        if not hasattr(p, "_out"):
            p._out, p._err = p.communicate()
        if p.returncode != 0:
            raise BenchError("%s worker failed (status %d): %s"
                             % (p.kind, p.returncode, p._err.strip()))
        return json.loads(p._out.strip().splitlines()[-1])

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass


def close_stdin(p, text=None):
    try:
        if text is not None:
            p.stdin.write(text)
            p.stdin.flush()
        p.stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass   # a worker that died is reported by Workers.result
    p.stdin = None


def setup_db(workers, path, cluster=None):
    p = workers.spawn("setup", {"db": path})
    close_stdin(p)
    workers.result(p, 60, cluster)


def summarize(results, duration):
    lats = sorted(x for r in results for x in r["lat"])
    n = len(lats)
    errs = sum(r["errors"] for r in results)
    kinds = {}
    for r in results:
        for k, v in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    return {"txn_s": n / duration, "commits": n,
            "p50_ms": pct(lats, 50) * 1e3 if lats else None,
            "p90_ms": pct(lats, 90) * 1e3 if lats else None,
            "p99_ms": pct(lats, 99) * 1e3 if lats else None,
            "mean_ms": sum(lats) / n * 1e3 if lats else None,
            "errors": errs, "error_kinds": kinds}


def measure_writes(workers, args, path, nwriters, cluster=None,
                   record_ids=False):
    setup_db(workers, path, cluster)
    ps = [workers.spawn("write", {"db": path, "record_ids": record_ids})
          for _ in range(nwriters)]
    for p in ps:
        workers.expect_ready(p, 60, cluster)
    t_start = time.monotonic() + 0.05 + args.warmup
    t_end = t_start + args.duration
    for p in ps:
        close_stdin(p, "go %.6f %.6f\n" % (t_start, t_end))
    timeout = args.warmup + args.duration + 60
    results = [workers.result(p, timeout, cluster) for p in ps]
    return summarize(results, args.duration), results


def measure_lag(workers, args, cluster, leader, followers):
    path = os.path.join(leader.mnt, "lag.db")
    setup_db(workers, path, cluster)
    readers = []
    for f in followers:
        r = workers.spawn("read", {"db": os.path.join(f.mnt, "lag.db")})
        readers.append((f, r))
    for _, r in readers:
        workers.expect_ready(r, 45, cluster)
    summary, results = measure_writes_nosetup(workers, args, path, cluster)
    ids = results[0]["ids"]
    last_id = max((i for i, _ in ids), default=0)
    # Also the last commit of the warm-up or after T_END: wait for whatever
    # the writer committed last; the readers stop at 'stop MAXID' + 10 s.
    for _, r in readers:
        close_stdin(r, "stop %d\n" % last_id)
    lag = {}
    for f, r in readers:
        res = workers.result(r, 60, cluster)
        seen = res["seen"]
        ts = [t for t, _ in seen]
        ms = [m for _, m in seen]
        lags, missing = [], 0
        for i, tc in ids:
            k = bisect_left(ms, i)   # max id is non-decreasing
            if k == len(ms):
                missing += 1
                continue
            lags.append(max(0.0, ts[k] - tc))
        lags.sort()
        lag["node%d" % f.id] = {
            "samples": len(lags), "not_seen": missing,
            "p50_ms": pct(lags, 50) * 1e3 if lags else None,
            "p99_ms": pct(lags, 99) * 1e3 if lags else None,
            "max_ms": lags[-1] * 1e3 if lags else None,
            "polls": res["polls"], "read_errors": res["errors"]}
    return summary, lag


def measure_writes_nosetup(workers, args, path, cluster):
    p = workers.spawn("write", {"db": path, "record_ids": True})
    workers.expect_ready(p, 60, cluster)
    t_start = time.monotonic() + 0.05 + args.warmup
    t_end = t_start + args.duration
    close_stdin(p, "go %.6f %.6f\n" % (t_start, t_end))
    res = workers.result(p, args.warmup + args.duration + 60, cluster)
    return summarize([res], args.duration), [res]


def make_workdir(args, state):
    if args.workdir:
        wd = os.path.abspath(args.workdir)
        if os.path.exists(wd) and os.listdir(wd):
            raise BenchError("--workdir %s exists and is not empty" % wd)
        os.makedirs(wd, exist_ok=True)
    else:
        try:
            wd = tempfile.mkdtemp(dir=os.getcwd(), prefix="benchc-")
        except OSError as e:
            raise BenchError("cannot create a scratch directory in %s: %s"
                             % (os.getcwd(), e))
    state["workdir"] = wd
    return wd


def run(args, state):
    if not (os.path.isfile(args.quorafs) and os.access(args.quorafs, os.X_OK)):
        raise BenchError("no quorafs executable at %s (build it, or pass "
                         "--quorafs PATH)" % args.quorafs)
    wd = make_workdir(args, state)
    log("scratch directory %s" % wd)
    workers = Workers()
    state["workers"] = workers
    rep = {"duration_s": args.duration, "warmup_s": args.warmup,
           "value_size": VALUE_SIZE, "synchronous": "FULL",
           "journal_mode": "WAL", "workdir": wd,
           "quorafs": os.path.abspath(args.quorafs)}

    # 1. raw baselines (1 and 8 writers), before the cluster runs.
    raw_dir = os.path.join(wd, "raw")
    os.makedirs(raw_dir)
    log("raw SQLite, 1 writer, %g s" % args.duration)
    rep["raw_1w"], _ = measure_writes(workers, args,
                                      os.path.join(raw_dir, "raw1.db"), 1)

    log("raw SQLite, %d writers, %g s" % (WRITERS, args.duration))
    rep["raw_%dw" % WRITERS], _ = measure_writes(
        workers, args, os.path.join(raw_dir, "raw%d.db" % WRITERS), WRITERS)

    # The cluster.
    cluster = Cluster(args.quorafs, wd, shlex.split(args.daemon_args))
    state["cluster"] = cluster
    log("starting a %d-node cluster" % NODES)
    members = cluster.start()
    rep["members"] = members
    leader = cluster.node([m["id"] for m in members if m["leader"]][0])
    followers = [n for n in cluster.nodes if n is not leader]
    rep["leader"] = leader.id
    log("leader: node %d (%s), mount %s" % (leader.id, leader.addr,
                                            leader.mnt))

    log("quorafs, 1 writer, %g s" % args.duration)
    rep["quorafs_1w"], _ = measure_writes(
        workers, args, os.path.join(leader.mnt, "w1.db"), 1, cluster)
    log("quorafs, %d writers, %g s" % (WRITERS, args.duration))
    rep["quorafs_%dw" % WRITERS], _ = measure_writes(
        workers, args, os.path.join(leader.mnt, "w%d.db" % WRITERS),
        WRITERS, cluster)
    log("replication lag, 1 writer, %g s" % args.duration)
    rep["lag_writer"], rep["lag"] = measure_lag(workers, args, cluster,
                                                leader, followers)
    cluster.check()

    def ratio(a, b):
        return a["txn_s"] / b["txn_s"] if b["txn_s"] else None
    rep["ratio_1w"] = ratio(rep["quorafs_1w"], rep["raw_1w"])
    rep["ratio_%dw" % WRITERS] = ratio(rep["quorafs_%dw" % WRITERS],
                                       rep["raw_%dw" % WRITERS])
    rep["targets"] = {
        "txn_s_1w": {"target": ">= 1,500 txn/s with 1 writer",
                     "value": rep["quorafs_1w"]["txn_s"],
                     "met": rep["quorafs_1w"]["txn_s"] >= TARGET_TXN_1W},
        "ratio_full": {"target": ">= 40% of raw FULL",
                       "value": rep["ratio_1w"],
                       "met": (rep["ratio_1w"] or 0) >= TARGET_RATIO},
    }
    return rep


# --------------------------------------------------------------------------
# the report

def fmt(x, spec="{:.2f}"):
    return "-" if x is None else spec.format(x)


def print_report(rep, out=sys.stdout):
    w = WRITERS
    p = lambda s="": print(s, file=out)
    p("quorafs 3-node cluster on loopback vs raw SQLite "
      "(WAL, synchronous=FULL, %d-byte blobs, %g s after %g s warm-up)"
      % (rep["value_size"], rep["duration_s"], rep["warmup_s"]))
    p("cluster: " + ", ".join(
        "%d %s %s%s" % (m["id"], m["address"], m["role"],
                        " leader" if m["leader"] else "")
        for m in rep["members"]))
    p()
    hdr = "%-22s %10s %9s %9s %7s %12s" % ("", "txn/s", "p50 ms", "p99 ms",
                                           "errors", "quorafs/raw")
    p(hdr)
    p("-" * len(hdr))
    rows = [("raw, 1 writer", rep["raw_1w"], None),
            ("quorafs, 1 writer", rep["quorafs_1w"], rep["ratio_1w"]),
            ("raw, %d writers" % w, rep["raw_%dw" % w], None),
            ("quorafs, %d writers" % w, rep["quorafs_%dw" % w],
             rep["ratio_%dw" % w])]
    for name, r, ratio in rows:
        p("%-22s %10s %9s %9s %7d %12s" % (
            name, "{:,.0f}".format(r["txn_s"]), fmt(r["p50_ms"]),
            fmt(r["p99_ms"]), r["errors"],
            "-" if ratio is None else "%.0f%%" % (ratio * 100)))
    for name, r, _ in rows:
        for k, v in r["error_kinds"].items():
            p("  %s: %d x %s" % (name, v, k))
    p()
    lw = rep["lag_writer"]
    p("replication lag (leader node %d, 1 writer at %s txn/s; follower "
      "polls max(id) every ~%d ms):" % (rep["leader"],
                                       "{:,.0f}".format(lw["txn_s"]),
                                       POLL_S * 1000))
    for name, l in sorted(rep["lag"].items()):
        p("  %-6s p50 %s ms  p99 %s ms  max %s ms  (%d ids%s%s)" % (
            name, fmt(l["p50_ms"], "{:.1f}"), fmt(l["p99_ms"], "{:.1f}"),
            fmt(l["max_ms"], "{:.1f}"), l["samples"],
            ", %d never seen" % l["not_seen"] if l["not_seen"] else "",
            ", %d read errors" % l["read_errors"] if l["read_errors"]
            else ""))
    p()
    p("targets (reported, not asserted):")
    t = rep["targets"]
    p("  %-32s %-8s (%s txn/s)" % (
        t["txn_s_1w"]["target"], "met" if t["txn_s_1w"]["met"] else "not met",
        "{:,.0f}".format(t["txn_s_1w"]["value"])))
    p("  %-32s %-8s (%s)" % (
        t["ratio_full"]["target"],
        "met" if t["ratio_full"]["met"] else "not met",
        fmt((t["ratio_full"]["value"] or 0) * 100, "{:.0f}%")))


# --------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="quorafs bench --cluster",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quorafs", default=os.path.join(REPO, "build",
                                                      "quorafs"),
                    help="the quorafs executable (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=5.0,
                    help="seconds measured per run (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="seconds of warm-up before each run (default 1)")
    ap.add_argument("--workdir", metavar="DIR",
                    help="scratch directory (created; must be empty); "
                         "default: a new benchc-* directory in the current "
                         "directory")
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch directory (databases, logs)")
    ap.add_argument("--daemon-args", metavar="ARGS", default="",
                    help="extra arguments for every node's quorafs mount, "
                         "one shell-quoted string "
                         "(--daemon-args='--snapshot-threshold 65536')")
    ap.add_argument("--json", action="store_true",
                    help="also print the results as one JSON object on "
                         "the last line")
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0:
        ap.error("--duration must be > 0 and --warmup >= 0")
    return args


def cleanup(state, keep):
    problems = []
    w = state.get("workers")
    if w is not None:
        w.kill_all()
    c = state.get("cluster")
    if c is not None:
        problems += c.stop()
    return problems + remove_workdir(state.get("workdir"), keep,
                                     [n.mnt for n in (c.nodes if c else [])])


def main(argv):
    if len(argv) == 2 and argv[0] == "--_worker":
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            spec = json.loads(argv[1])
            print(json.dumps(WORKERS[spec["kind"]](spec)), flush=True)
            return 0
        except KeyboardInterrupt:
            return 130
        except Exception as e:
            print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
            return 1

    args = parse_args(argv)
    state = {}

    def on_term(signum, frame):
        raise KeyboardInterrupt
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        old[sig] = signal.signal(sig, on_term)

    rc, rep = 0, None
    try:
        rep = run(args, state)
    except BenchError as e:
        log("error: %s" % e)
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except Exception as e:
        log("error: %s: %s" % (type(e).__name__, e))
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            for pr in cleanup(state, args.keep):
                log("cleanup: " + pr)
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
    if rep is not None and rc == 0:
        print_report(rep)
        if args.json:
            print(json.dumps(rep, sort_keys=True))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
