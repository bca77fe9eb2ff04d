#!/usr/bin/env python3
"""quorafs bench: SQLite through a quorafs mount against raw SQLite.

One invocation measures, on one filesystem:

  * raw SQLite on a plain directory of that filesystem, and
  * the same databases through a quorafs mount whose daemon (single node,
    loopback address) this script starts, with its data dir on that same
    filesystem,

each with PRAGMA synchronous=FULL and NORMAL, for two workloads in WAL mode:

  write  single-row autocommit INSERT transactions of random values
         (--value-size bytes, default 1 KiB);
  read   point lookups by a random primary key, each its own autocommit
         read transaction, on a table of --rows rows.

Python's sqlite3 module drives both sides, so both pay the same client
overhead.  Each measurement runs in its own worker process (with a timeout,
so a hung mount cannot hang the benchmark), warms up before it measures, and
raw and mounted measurements alternate over --rounds rounds (the order flips
every round); the table reports the median over rounds.  The targets (writes
through the mount >= 50% of raw with synchronous=FULL, reads >= 90% of raw)
are reported, not asserted: the exit status is 0 whenever the benchmark ran,
non-zero only when it could not run.

With --wire it measures over the dqlite wire protocol instead: it replays
dqlite-benchmark's workload (kvwrite: INSERT OR REPLACE INTO model(key,
value) VALUES(?, ?) with 32-byte keys and 1 KiB values; kvreadwrite: half
of those, half SELECT value FROM model WHERE key = ?) with N workers (one
process and one persistent connection of tools/qfwire.py each) against a
quorafs node this script starts (its --address port serves the protocol)
or any --servers list, and against a dqlite node in the same run (Debian's
dqlite-demo, started on loopback in the scratch directory and stopped by
pid, or a --dqlite list), and prints txn/s, p50/p99, errors, the server's
CPU per transaction and the quorafs/dqlite ratio.  Targets (reported): at
least 2x dqlite's single-worker kvwrite throughput, no errors at 8
workers.

With --cluster (first) it runs tools/bench_cluster.py: a 3-node cluster on
loopback against raw SQLite, 1 and 8 writers through the leader's mount,
and the replication lag to each follower (see that file; its options
follow --cluster).
"""

import argparse
import json
import os
import platform
import random
import select
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

WRITE_TARGET = 0.50  # mount/raw txn/s, synchronous=FULL
READ_TARGET = 0.90   # mount/raw txn/s

SIDES = ("raw", "quorafs")
SYNCS = ("FULL", "NORMAL")


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# worker: one measurement (or one setup step) in its own process

def worker_main(spec):
    path = spec["db"]
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    if spec["action"] == "setup-write":
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise BenchError("journal_mode=WAL refused on %s: %s" % (path, mode))
        conn.execute("CREATE TABLE IF NOT EXISTS t"
                     "(k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        return {"ok": True}
    if spec["action"] == "setup-read":
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise BenchError("journal_mode=WAL refused on %s: %s" % (path, mode))
        conn.execute("PRAGMA synchronous=NORMAL")
        if spec.get("in_wal"):
            conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        rows, vs, batch = spec["rows"], spec["value_size"], 1000
        for start in range(1, rows + 1, batch):
            end = min(rows, start + batch - 1)
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO t(k, v) VALUES (?, ?)",
                             ((k, os.urandom(vs))
                              for k in range(start, end + 1)))
            conn.execute("COMMIT")
        n = conn.execute("SELECT count(*) FROM t").fetchone()[0]
        if n != rows:
            raise BenchError("read table on %s has %d rows, not %d"
                             % (path, n, rows))
        if spec.get("in_wal"):
            # Leave every page in the WAL: no checkpoint, and no close (the
            # last connection's close would checkpoint); a holder process
            # keeps the database open from now on.
            print(json.dumps({"ok": True}), flush=True)
            os._exit(0)
        # Same starting state on both sides: every page in the main file,
        # the WAL empty.
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return {"ok": True, "checkpoint_busy": busy}
    if spec["action"] == "hold":
        # Keeps the database open so that no reader's close checkpoints it,
        # until stdin closes; exits without closing for the same reason.
        conn.execute("SELECT count(*) FROM t").fetchone()
        print(json.dumps({"ok": True}), flush=True)
        sys.stdin.read()
        os._exit(0)

    # Measurement.
    conn.execute("PRAGMA synchronous=%s" % spec["sync"])
    rng = random.Random(spec["seed"])
    vs, rows = spec["value_size"], spec["rows"]
    now = time.perf_counter_ns
    if spec["action"] == "write":
        sql = "INSERT INTO t(v) VALUES (?)"

        def one():
            val = os.urandom(vs)
            t0 = now()
            conn.execute(sql, (val,))
            return now() - t0
    elif spec["action"] == "read":
        sql = "SELECT v FROM t WHERE k = ?"

        def one():
            k = rng.randint(1, rows)
            t0 = now()
            # fetchall steps the statement to SQLITE_DONE, which ends the
            # autocommit read transaction: every lookup is its own txn.
            r = conn.execute(sql, (k,)).fetchall()
            dt = now() - t0
            if len(r) != 1 or len(r[0][0]) != vs:
                raise BenchError("lookup of key %d returned %r" % (k, r[:1]))
            return dt
    else:
        raise BenchError("unknown worker action %r" % spec["action"])

    deadline = now() + int(spec["warmup"] * 1e9)
    while now() < deadline:
        one()
    lat = []
    append = lat.append
    start = now()
    deadline = start + int(spec["duration"] * 1e9)
    while True:
        append(one())
        t = now()
        if t >= deadline:
            break
    elapsed = (t - start) / 1e9
    conn.close()
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, max(0, int(round(p * len(lat))) - 1))] / 1e6

    return {"ok": True, "n": len(lat), "elapsed": elapsed,
            "txn_per_s": len(lat) / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": sum(lat) / len(lat) / 1e6, "max_ms": lat[-1] / 1e6}


def start_holder(spec, state):
    """Starts a process keeping spec["db"] open (see worker "hold")."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker",
           json.dumps(dict(spec, action="hold"))]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    state.setdefault("holders", []).append(proc)
    line = proc.stdout.readline()
    if '"ok"' not in line:
        proc.kill()
        raise BenchError("could not hold %s open: %s" % (
            spec["db"], proc.stderr.read().strip()[-2000:] or "no message"))


def run_worker(spec, timeout, state):
    """Runs one worker process; returns its result dict or raises BenchError."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker",
           json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    state["worker"] = proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise BenchError("%s on %s did not finish within %.0f s (a hung mount?)"
                         % (spec["action"], spec["db"], timeout))
    finally:
        state["worker"] = None
    if proc.returncode != 0:
        raise BenchError("%s on %s failed (exit %d): %s"
                         % (spec["action"], spec["db"], proc.returncode,
                            err.strip()[-2000:] or "no message"))
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError("%s on %s printed no result: %s %s"
                         % (spec["action"], spec["db"], out[-500:], err[-500:]))


# --------------------------------------------------------------------------
# filesystem helpers

def _unescape(s):
    return (s.replace("\\040", " ").replace("\\011", "\t")
            .replace("\\012", "\n").replace("\\134", "\\"))


def mounts():
    """[(mount point, fstype, source)] from /proc/self/mountinfo."""
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            a, b = left.split(), right.split()
            if len(a) >= 5 and len(b) >= 2:
                res.append((_unescape(a[4]), b[0], _unescape(b[1])))
    return res


def fs_of(path):
    """(mount point, fstype, source) of the filesystem holding path."""
    path = os.path.realpath(path)
    best = ("/", "?", "?")
    blen = -1
    for mp, fstype, src in mounts():
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) \
                and len(mp) >= blen:
            best, blen = (mp, fstype, src), len(mp)
    return best


def abort_fuse(path):
    """Abort the FUSE connection mounted at @path (fusectl); True if
    done.  Reads only /proc and writes only /sys."""
    path = os.path.abspath(path)
    dev = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a = line.split()
            if len(a) > 4 and _unescape(a[4]) == path and " - fuse" in line:
                major, minor = (int(x) for x in a[2].split(":"))
                dev = os.makedev(major, minor)
    if dev is None:
        return False
    try:
        with open("/sys/fs/fuse/connections/%d/abort" % dev, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def is_mounted(path):
    path = os.path.realpath(path)
    return any(mp == path for mp, _, _ in mounts())


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_times():
    """(total, steal) jiffies from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]), v[7]
    except (OSError, ValueError, IndexError):
        return None


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def proc_cpu(pid):
    """user+system CPU seconds of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------
# the daemon

def start_daemon(args, wd, state):
    data, mnt = os.path.join(wd, "data"), os.path.join(wd, "mnt")
    port = args.port or free_port()
    cmd = [args.quorafs, "mount", "--data-dir", data, "--mount", mnt,
           "--id", "1", "--address", "127.0.0.1:%d" % port, "--bootstrap"]
    cmd += shlex.split(args.daemon_args or "")
    logpath = os.path.join(wd, "daemon.log")
    state["daemon_log"] = logpath
    state["mnt"] = mnt
    log("starting: " + " ".join(shlex.quote(c) for c in cmd))
    logf = open(logpath, "w")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as e:
        raise BenchError("cannot run %s: %s" % (args.quorafs, e))
    finally:
        logf.close()
    state["daemon"] = proc
    deadline = time.monotonic() + args.start_timeout
    while True:
        with open(logpath, errors="replace") as f:
            text = f.read()
        if "ready:" in text:
            break
        if proc.poll() is not None:
            state["daemon_exit_reported"] = True
            raise BenchError("the daemon exited with status %d before it was "
                             "ready; its log:\n%s" % (proc.returncode,
                                                     text[-3000:]))
        if time.monotonic() > deadline:
            raise BenchError("the daemon did not print 'ready:' within %d s; "
                             "its log:\n%s" % (args.start_timeout, text[-3000:]))
        time.sleep(0.05)
    # Guard against benchmarking the bare directory under the mount point.
    fstype = fs_of(mnt)
    if not is_mounted(mnt) or not fstype[1].startswith("fuse"):
        raise BenchError("the daemon says ready but %s is not a FUSE mount "
                         "(%s)" % (mnt, fstype[1]))
    return proc, data, mnt


def daemon_log_tail(state, n=3000):
    try:
        with open(state["daemon_log"], errors="replace") as f:
            return f.read()[-n:]
    except (OSError, KeyError):
        return ""


def cleanup(state, keep):
    """Stops the worker and the daemon, unmounts, removes the workdir.
    Never raises; returns a list of problems."""
    problems = []
    w = state.get("worker")
    if w is not None and w.poll() is None:
        w.kill()
    for h in state.get("holders", []) + state.get("wire_workers", []):
        if h.poll() is None:
            h.kill()
    q = state.get("dqlite")
    if q is not None and q.poll() is None:
        # By pid: SIGTERM (dqlite-demo hands over and exits), then SIGKILL.
        try:
            q.send_signal(signal.SIGTERM)
            try:
                q.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append("dqlite-demo (pid %d) ignored SIGTERM for "
                                "15 s; killed it" % q.pid)
                q.kill()
                q.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append("stopping dqlite-demo (pid %d): %s" % (q.pid, e))
    d = state.get("daemon")
    if d is not None and d.poll() is None:
        try:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append("the daemon (pid %d) ignored SIGTERM for 15 s; "
                                "killed it" % d.pid)
                d.kill()
                try:
                    d.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    # Stuck in the kernel on its own mount (a process
                    # that maps files of the mount it serves cannot exit
                    # while they have dirty pages): abort the connection.
                    if state.get("mnt") and abort_fuse(state["mnt"]):
                        problems.append("the killed daemon was stuck on "
                                        "its mount; aborted the FUSE "
                                        "connection")
                    d.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append("stopping the daemon (pid %d): %s" % (d.pid, e))
    if d is not None and d.returncode not in (None, 0) and not state.get(
            "daemon_exit_reported"):
        problems.append("the daemon exited with status %s" % d.returncode)
    for p in ([w] if w is not None else []) + state.get("holders", []) \
            + state.get("wire_workers", []):
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            problems.append("worker pid %d did not exit" % p.pid)
    mnt = state.get("mnt")
    if mnt and is_mounted(mnt):
        for cmd in (["fusermount3", "-u", mnt], ["umount", mnt],
                    ["fusermount3", "-uz", mnt], ["umount", "-l", mnt]):
            try:
                subprocess.run(cmd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if not is_mounted(mnt):
                break
        if is_mounted(mnt):
            problems.append("could not unmount %s" % mnt)
    return problems + remove_workdir(state.get("workdir"), keep, [mnt])


def remove_workdir(wd, keep, mnts):
    """Remove the scratch directory @wd unless @keep, or unless one of
    @mnts (inside it) is still mounted; returns the problems."""
    if not wd or not os.path.isdir(wd):
        return []
    still = [m for m in mnts if m and is_mounted(m)]
    if keep:
        log("kept the scratch directory " + wd)
    elif still:
        return ["left %s in place: %s still mounted" % (wd, ", ".join(still))]
    else:
        shutil.rmtree(wd, ignore_errors=True)
        if os.path.exists(wd):
            return ["could not remove " + wd]
    return []


# --------------------------------------------------------------------------
# the benchmark

def fmt_rate(x):
    return "{:,.0f}".format(x)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def make_workdir(args, state):
    """A fresh scratch directory under --workdir (or the current
    directory), on a local disk filesystem; (path, fs_of(parent))."""
    parent = args.workdir or os.getcwd()
    if not os.path.isdir(parent):
        raise BenchError("--workdir %s is not a directory" % parent)
    pfs = fs_of(parent)
    if pfs[1].startswith("fuse"):
        raise BenchError("%s is on a FUSE filesystem (%s); quorafs needs its "
                         "data dir on a local filesystem: pass --workdir"
                         % (parent, pfs[1]))
    if pfs[1] in ("tmpfs", "ramfs"):
        if args.workdir is None:
            raise BenchError("the working directory %s is on %s, where fsync "
                             "is free and raw figures mean nothing: pass "
                             "--workdir on a disk filesystem" % (parent, pfs[1]))
        log("warning: %s is on %s: fsync is free there, raw figures will be "
            "flattering" % (parent, pfs[1]))
    wd = tempfile.mkdtemp(prefix=".quorafs-bench-", dir=parent)
    state["workdir"] = wd
    return wd, pfs


def run(args, state):
    if args.wire:
        return run_wire(args, state)
    if not os.path.isfile(args.quorafs) or not os.access(args.quorafs, os.X_OK):
        raise BenchError("no quorafs binary at %s (build it: cd %s && meson "
                         "setup build && ninja -C build, or pass --quorafs)"
                         % (args.quorafs, REPO))
    wd, pfs = make_workdir(args, state)
    raw = os.path.join(wd, "raw")
    os.mkdir(raw)
    os.mkdir(os.path.join(wd, "data"))
    if os.stat(raw).st_dev != os.stat(os.path.join(wd, "data")).st_dev:
        raise BenchError("raw dir and data dir are not on one filesystem")
    log("workdir %s on %s (%s at %s)" % (wd, pfs[2], pfs[1], pfs[0]))

    daemon, data, mnt = start_daemon(args, wd, state)
    if os.stat(raw).st_dev != os.stat(data).st_dev:
        raise BenchError("raw dir and data dir are not on one filesystem")
    dirs = {"raw": raw, "quorafs": mnt}

    def check_daemon():
        if daemon.poll() is not None:
            state["daemon_exit_reported"] = True
            raise BenchError("the daemon exited with status %d; its log:\n%s"
                             % (daemon.returncode, daemon_log_tail(state)))

    workloads = ["write", "read"] if args.workload == "all" else [args.workload]
    base = {"value_size": args.value_size, "rows": args.rows,
            "duration": args.duration, "warmup": args.warmup}
    setup_timeout = 120 + args.rows * 0.01
    for side in SIDES:
        if "write" in workloads:
            for sync in SYNCS:
                spec = dict(base, action="setup-write", sync=sync,
                            db=os.path.join(dirs[side], "w_%s.db" % sync.lower()))
                run_worker(spec, setup_timeout, state)
        if "read" in workloads:
            log("populating the read table (%d rows%s) on %s" % (
                args.rows, ", left in the WAL" if args.read_table_in_wal
                else "", side))
            spec = dict(base, action="setup-read", sync="NORMAL",
                        in_wal=args.read_table_in_wal,
                        db=os.path.join(dirs[side], "r.db"))
            run_worker(spec, setup_timeout, state)
            if args.read_table_in_wal:
                start_holder(spec, state)
        check_daemon()

    # (workload, sync, side) -> list of per-round results
    res = {}
    timeout = args.duration + args.warmup + 120
    steal0 = cpu_times()
    load0 = loadavg()
    seed = args.seed
    total = args.rounds * len(workloads) * len(SYNCS) * len(SIDES)
    done = 0
    for rnd in range(args.rounds):
        order = SIDES if rnd % 2 == 0 else tuple(reversed(SIDES))
        for wl in workloads:
            for sync in SYNCS:
                for side in order:
                    db = (os.path.join(dirs[side], "w_%s.db" % sync.lower())
                          if wl == "write" else os.path.join(dirs[side], "r.db"))
                    seed += 1
                    spec = dict(base, action=wl, sync=sync, db=db, seed=seed)
                    c0 = proc_cpu(daemon.pid)
                    r = run_worker(spec, timeout, state)
                    c1 = proc_cpu(daemon.pid)
                    if c0 is not None and c1 is not None:
                        # The daemon's CPU over warm-up + measurement, per txn
                        # of the measured part (an estimate).
                        frac = args.duration / (args.duration + args.warmup)
                        r["daemon_cpu_us_per_txn"] = \
                            (c1 - c0) * frac / r["n"] * 1e6
                    check_daemon()
                    done += 1
                    log("[%d/%d] round %d %-5s %-6s %-7s %9s txn/s  p50 %.3f ms"
                        "  p99 %.3f ms" % (done, total, rnd + 1, wl, sync, side,
                                           fmt_rate(r["txn_per_s"]),
                                           r["p50_ms"], r["p99_ms"]))
                    res.setdefault((wl, sync, side), []).append(r)
    steal1 = cpu_times()
    steal = None
    # A steal counter still at 0 since boot means the hypervisor does not
    # report steal (firecracker): say n/a rather than 0%.
    if steal0 and steal1 and steal1[0] > steal0[0] and steal1[1] > 0:
        steal = 100.0 * (steal1[1] - steal0[1]) / (steal1[0] - steal0[0])
    load1 = loadavg()

    rows = []
    for wl in workloads:
        for sync in SYNCS:
            for side in SIDES:
                rs = res[(wl, sync, side)]
                rows.append({
                    "workload": wl, "sync": sync, "side": side,
                    "txn_per_s": median([r["txn_per_s"] for r in rs]),
                    "p50_ms": median([r["p50_ms"] for r in rs]),
                    "p99_ms": median([r["p99_ms"] for r in rs]),
                    "rounds": rs})
    med = {(r["workload"], r["sync"], r["side"]): r for r in rows}
    ratios = []
    for wl in workloads:
        for sync in SYNCS:
            q, r = med[(wl, sync, "quorafs")], med[(wl, sync, "raw")]
            rr = [a["txn_per_s"] / b["txn_per_s"] for a, b in
                  zip(res[(wl, sync, "quorafs")], res[(wl, sync, "raw")])]
            ratios.append({"workload": wl, "sync": sync,
                           "ratio": q["txn_per_s"] / r["txn_per_s"],
                           "ratio_per_round": rr,
                           "p50_ratio": q["p50_ms"] / r["p50_ms"]})
    rat = {(r["workload"], r["sync"]): r for r in ratios}
    targets = []
    if "write" in workloads:
        x = rat[("write", "FULL")]
        targets.append({"name": "writes, synchronous=FULL", "workload": "write",
                        "sync": "FULL", "threshold": WRITE_TARGET,
                        "ratio": x["ratio"], "met": x["ratio"] >= WRITE_TARGET})
    if "read" in workloads:
        for sync in SYNCS:
            x = rat[("read", sync)]
            targets.append({"name": "reads, synchronous=%s" % sync,
                            "workload": "read", "sync": sync,
                            "threshold": READ_TARGET, "ratio": x["ratio"],
                            "met": x["ratio"] >= READ_TARGET})

    env = {
        "kernel": platform.release(), "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "filesystem": {"type": pfs[1], "source": pfs[2], "mountpoint": pfs[0]},
        "quorafs": args.quorafs, "daemon_args": args.daemon_args or "",
        "cpu_steal_percent": steal,
        "loadavg_1min": {"start": load0, "end": load1},
    }
    try:
        env["commit"] = subprocess.run(
            ["git", "-C", REPO, "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        env["commit"] = None
    return {"settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                         "rounds": args.rounds, "value_size": args.value_size,
                         "rows": args.rows, "journal_mode": "WAL",
                         "read_table_in_wal": args.read_table_in_wal},
            "environment": env, "results": rows, "ratios": ratios,
            "targets": targets}


def print_report(rep, out=sys.stdout):
    s, e = rep["settings"], rep["environment"]
    steal = e["cpu_steal_percent"]
    print("quorafs bench: %d round(s) x %g s per measurement (+%g s warm-up), "
          "medians over rounds" % (s["rounds"], s["duration_s"], s["warmup_s"]),
          file=out)
    print("  %s (%s), kernel %s, %d CPUs, SQLite %s, Python %s, "
          "quorafs %s%s" % (e["filesystem"]["source"], e["filesystem"]["type"],
                           e["kernel"], e["cpus"], e["sqlite"], e["python"],
                           e["commit"] or "?",
                           " " + e["daemon_args"] if e["daemon_args"] else ""),
          file=out)
    la = e["loadavg_1min"]
    print("  WAL mode; write = 1-row autocommit INSERT of %d random bytes; "
          "read = autocommit point SELECT on %d rows (%s)" % (
              s["value_size"], s["rows"],
              "all in the WAL" if s["read_table_in_wal"]
              else "checkpointed into the main file"), file=out)
    print("  CPU steal %s; 1-min load average %s at start, %s at end "
          "(the benchmark itself keeps about 1 CPU busy)" % (
              "%.1f%%" % steal if steal is not None else "n/a (not reported)",
              "%.2f" % la["start"] if la["start"] is not None else "?",
              "%.2f" % la["end"] if la["end"] is not None else "?"),
          file=out)
    print(file=out)
    hdr = "%-8s %-16s %10s %9s %9s %8s   %s" % (
        "workload", "config", "txn/s", "p50 ms", "p99 ms", "vs raw",
        "txn/s per round")
    print(hdr, file=out)
    print("-" * len(hdr), file=out)
    rat = {(r["workload"], r["sync"]): r for r in rep["ratios"]}
    for r in rep["results"]:
        ratio = ""
        if r["side"] == "quorafs":
            ratio = "%.2fx" % rat[(r["workload"], r["sync"])]["ratio"]
        per = " ".join(fmt_rate(x["txn_per_s"]) for x in r["rounds"])
        print("%-8s %-16s %10s %9.3f %9.3f %8s   %s" % (
            r["workload"], "%s %s" % (r["side"], r["sync"]),
            fmt_rate(r["txn_per_s"]), r["p50_ms"], r["p99_ms"], ratio, per),
            file=out)
    print(file=out)
    print("targets (reported, not asserted):", file=out)
    for t in rep["targets"]:
        per = rat[(t["workload"], t["sync"])]["ratio_per_round"]
        print("  %-26s quorafs/raw = %.3f  (target >= %.2f)  %-7s  "
              "per round: %s" % (
                  t["name"] + ":", t["ratio"], t["threshold"],
                  "MET" if t["met"] else "NOT MET",
                  " ".join("%.2f" % x for x in per)), file=out)


# --------------------------------------------------------------------------
# --wire: dqlite-benchmark's workload over the wire protocol

WIRE_WRITE_SQL = "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)"
WIRE_READ_SQL = "SELECT value FROM model WHERE key = ?"
WIRE_SCHEMA = ("CREATE TABLE IF NOT EXISTS model "
               "(key TEXT, value TEXT, UNIQUE(key))")
WIRE_WORKLOADS = ("kvwrite", "kvreadwrite")
WIRE_WRITE_TARGET = 2.0  # quorafs/dqlite txn/s, kvwrite, 1 worker
WIRE_ERROR_WORKERS = 8   # no errors expected at this many workers

_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TO_LETTERS = bytes(_LETTERS[i % len(_LETTERS)] for i in range(256))


def rand_letters(n):
    """n random ASCII letters (dqlite-benchmark's randSeq)."""
    return os.urandom(n).translate(_TO_LETTERS).decode()


def rand_value(n):
    """dqlite-benchmark's value: half one repeated letter, half random
    letters."""
    return rand_letters(1) * (n // 2) + rand_letters(n - n // 2)


def wire_worker_main(spec):
    """One benchmark worker: a persistent connection (leader discovery
    over spec["servers"], OPEN spec["database"]), then dqlite-benchmark's
    loop.  Prints {"ready"} once connected, waits for "go WARM_END END"
    (CLOCK_MONOTONIC seconds) on stdin, runs until END and records the
    operations that completed in [WARM_END, END]."""
    import qfwire
    servers, dbname = spec["servers"], spec["database"]
    timeout = spec["timeout"]
    conn = qfwire.connect(servers, dbname, timeout=timeout, deadline=30)
    print(json.dumps({"ready": True}), flush=True)
    words = sys.stdin.readline().split()
    if len(words) != 3 or words[0] != "go":
        return {"ok": False, "error": "no go line"}
    warm_end, end = float(words[1]), float(words[2])
    rng = random.Random(spec["seed"])
    ks, vs = spec["key_size"], spec["value_size"]
    readwrite = spec["workload"] == "kvreadwrite"
    keys, values = [], {}
    lat = {"write": [], "read": []}
    errors, first_errors, reconnects = 0, [], 0
    now = time.monotonic
    while True:
        t0 = now()
        if t0 >= end:
            break
        read = readwrite and keys and rng.random() < 0.5
        try:
            if read:
                k = keys[rng.randrange(len(keys))]
                _, rows = conn.query_sql(WIRE_READ_SQL, (k,))
                if rows != [(values[k],)]:
                    raise BenchError("read of key %s returned %s" % (
                        k, "no row" if not rows else "a wrong value"))
            else:
                k, v = rand_letters(ks), rand_value(vs)
                conn.exec_sql(WIRE_WRITE_SQL, (k, v))
                if readwrite:
                    keys.append(k)
                    values[k] = v
        except (qfwire.Failure, qfwire.WireError, OSError, BenchError) as e:
            errors += 1
            if len(first_errors) < 5:
                first_errors.append("%s: %s" % (type(e).__name__, e))
            if conn.closed or (isinstance(e, qfwire.Failure) and e.bad_conn):
                # database/sql would retry on a new connection: so do we,
                # but the error counts.
                conn.close()
                reconnects += 1
                try:
                    conn = qfwire.connect(servers, dbname, timeout=timeout,
                                          deadline=max(1.0, end - now()))
                except (qfwire.WireError, OSError) as e2:
                    first_errors.append("reconnect: %s" % e2)
                    break
            continue
        t1 = now()
        if warm_end <= t1 <= end:
            lat["read" if read else "write"].append(int((t1 - t0) * 1e6))
    conn.close()
    return {"ok": True, "lat_us": lat, "errors": errors,
            "first_errors": first_errors, "reconnects": reconnects}


def _pct(sorted_xs, p):
    if not sorted_xs:
        return float("nan")
    return sorted_xs[min(len(sorted_xs) - 1,
                         max(0, int(round(p * len(sorted_xs))) - 1))]


def wire_measure(args, state, side, workload, nworkers, seed):
    """N worker processes against one side; the aggregated result."""
    spec0 = {"servers": side["servers"], "database": args.database,
             "workload": workload, "key_size": args.key_size,
             "value_size": args.value_size, "timeout": args.wire_timeout}
    procs = []
    state["wire_workers"] = procs
    try:
        for i in range(nworkers):
            spec = dict(spec0, seed=seed * 1000 + i)
            procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__),
                 "--_wire_worker", json.dumps(spec)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 60
        for p in procs:
            r, _, _ = select.select([p.stdout], [], [],
                                    max(0.0, deadline - time.monotonic()))
            line = p.stdout.readline() if r else ""
            if '"ready"' not in line:
                p.kill()
                raise BenchError("a worker could not connect to %s (%s): %s"
                                 % (side["name"], ",".join(side["servers"]),
                                    p.stderr.read().strip()[-2000:]
                                    if not r or p.poll() is not None
                                    else "no answer within 60 s"))
        pid = side.get("pid")
        c0 = proc_cpu(pid) if pid else None
        t0 = time.monotonic() + 0.05
        warm_end = t0 + args.warmup
        end = warm_end + args.duration
        for p in procs:
            p.stdin.write("go %.6f %.6f\n" % (warm_end, end))
            p.stdin.flush()
        outs = []
        for p in procs:
            try:
                out, err = p.communicate(
                    timeout=max(1.0, end + 60 - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise BenchError("a %s worker against %s did not finish "
                                 "(a hung server?)" % (workload, side["name"]))
            if p.returncode != 0:
                raise BenchError("a %s worker against %s failed (exit %d): %s"
                                 % (workload, side["name"], p.returncode,
                                    err.strip()[-2000:] or "no message"))
            try:
                outs.append(json.loads(out.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                raise BenchError("a worker printed no result: %s %s"
                                 % (out[-300:], err[-300:]))
        c1 = proc_cpu(pid) if pid else None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        state["wire_workers"] = []
    res = {"side": side["name"], "workload": workload, "workers": nworkers,
           "errors": sum(o["errors"] for o in outs),
           "reconnects": sum(o["reconnects"] for o in outs),
           "first_errors": [e for o in outs for e in o["first_errors"]][:5]}
    allv = []
    for kind in ("write", "read"):
        v = sorted(x for o in outs for x in o["lat_us"][kind])
        allv.extend(v)
        res[kind + "_n"] = len(v)
        res[kind + "_per_s"] = len(v) / args.duration
        res[kind + "_p50_ms"] = _pct(v, 0.50) / 1e3
        res[kind + "_p99_ms"] = _pct(v, 0.99) / 1e3
    allv.sort()
    res["n"] = len(allv)
    res["txn_per_s"] = len(allv) / args.duration
    res["p50_ms"] = _pct(allv, 0.50) / 1e3
    res["p99_ms"] = _pct(allv, 0.99) / 1e3
    if c0 is not None and c1 is not None and allv:
        frac = args.duration / (args.duration + args.warmup)
        res["server_cpu_us_per_txn"] = (c1 - c0) * frac / len(allv) * 1e6
    return res


def wire_setup(side, args):
    import qfwire
    try:
        c = qfwire.connect(side["servers"], args.database,
                           timeout=args.wire_timeout, deadline=30)
        try:
            c.exec_sql(WIRE_SCHEMA)
        finally:
            c.close()
    except (qfwire.Failure, qfwire.WireError, OSError) as e:
        raise BenchError("setting up %s at %s: %s" % (
            side["name"], ",".join(side["servers"]), e))


def start_dqlite(args, wd, state):
    """Starts a dqlite-demo node on loopback; (proc, address)."""
    import qfwire
    exe = shutil.which("dqlite-demo")
    ddir = os.path.join(wd, "dqlite")
    os.mkdir(ddir)
    addr = "127.0.0.1:%d" % free_port()
    api = "127.0.0.1:%d" % free_port()
    cmd = [exe, "--db", addr, "--api", api, "--dir", ddir]
    logpath = os.path.join(wd, "dqlite-demo.log")
    state["dqlite_log"] = logpath
    log("starting: " + " ".join(shlex.quote(c) for c in cmd))
    with open(logpath, "w") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, cwd=wd,
                                start_new_session=True)
    state["dqlite"] = proc
    deadline = time.monotonic() + args.start_timeout
    while True:
        if proc.poll() is not None:
            raise BenchError("dqlite-demo exited with status %d: %s" % (
                proc.returncode, _tail(logpath)))
        try:
            qfwire.connect([addr], None, timeout=2, deadline=0.5).close()
            return proc, addr
        except (qfwire.WireError, OSError):
            pass
        if time.monotonic() > deadline:
            raise BenchError("dqlite-demo at %s not leader within %d s: %s"
                             % (addr, args.start_timeout, _tail(logpath)))
        time.sleep(0.2)


def _tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


def log_findings(path):
    """Lines of a server log that say WARN/ERROR (or panic), at most 10."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if (" WARN " in line or " ERROR " in line or "panic" in line
                        or "level=warn" in line or "level=error" in line):
                    out.append(line.rstrip()[:300])
    except OSError:
        pass
    return out


def pkg_version(name):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name],
                              capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def run_wire(args, state):
    sys.path.insert(0, HERE)
    sides = []
    notes = []
    wd = pfs = None
    need_wd = args.servers is None or (args.dqlite is None
                                       and not args.no_dqlite)
    if need_wd:
        wd, pfs = make_workdir(args, state)
        log("workdir %s on %s (%s at %s)" % (wd, pfs[2], pfs[1], pfs[0]))
    if args.servers is not None:
        sides.append({"name": "quorafs", "servers": args.servers,
                      "started": False})
    else:
        if not os.path.isfile(args.quorafs) or \
                not os.access(args.quorafs, os.X_OK):
            raise BenchError("no quorafs binary at %s (build it: cd %s && "
                             "meson setup build && ninja -C build, or pass "
                             "--quorafs or --servers)" % (args.quorafs, REPO))
        os.mkdir(os.path.join(wd, "data"))
        daemon, _, _ = start_daemon(args, wd, state)
        port = None
        for i, a in enumerate(daemon.args):
            if a == "--address":
                port = daemon.args[i + 1]
        sides.append({"name": "quorafs", "servers": [port], "pid": daemon.pid,
                      "started": True, "log": state["daemon_log"]})
    if args.no_dqlite:
        notes.append("dqlite not measured (--no-dqlite)")
    elif args.dqlite is not None:
        sides.append({"name": "dqlite", "servers": args.dqlite,
                      "started": False})
    elif shutil.which("dqlite-demo") is None:
        notes.append("dqlite-demo is not installed (Debian package "
                     "go-dqlite): measured quorafs only")
        log(notes[-1])
    else:
        proc, addr = start_dqlite(args, wd, state)
        sides.append({"name": "dqlite", "servers": [addr], "pid": proc.pid,
                      "started": True, "log": state["dqlite_log"]})

    def check_servers():
        for side in sides:
            p = state.get("daemon") if side["name"] == "quorafs" \
                else state.get("dqlite")
            if side["started"] and p is not None and p.poll() is not None:
                if side["name"] == "quorafs":
                    state["daemon_exit_reported"] = True
                raise BenchError("the %s node exited with status %d: %s" % (
                    side["name"], p.returncode, _tail(side["log"])))

    for side in sides:
        wire_setup(side, args)
    check_servers()

    workloads = list(WIRE_WORKLOADS) if args.wire_workload == "all" \
        else [args.wire_workload]
    res = {}
    seed = args.seed
    total = args.rounds * len(workloads) * len(args.workers) * len(sides)
    done = 0
    steal0, load0 = cpu_times(), loadavg()
    for rnd in range(args.rounds):
        order = sides if rnd % 2 == 0 else list(reversed(sides))
        for wl in workloads:
            for nw in args.workers:
                for side in order:
                    seed += 1
                    r = wire_measure(args, state, side, wl, nw, seed)
                    check_servers()
                    done += 1
                    log("[%d/%d] round %d %-11s %2d worker(s) %-7s %9s txn/s"
                        "  p50 %.3f ms  p99 %.3f ms  errors %d" % (
                            done, total, rnd + 1, wl, nw, side["name"],
                            fmt_rate(r["txn_per_s"]), r["p50_ms"],
                            r["p99_ms"], r["errors"]))
                    res.setdefault((wl, nw, side["name"]), []).append(r)
    steal1, load1 = cpu_times(), loadavg()
    steal = None
    if steal0 and steal1 and steal1[0] > steal0[0] and steal1[1] > 0:
        steal = 100.0 * (steal1[1] - steal0[1]) / (steal1[0] - steal0[0])

    rows = []
    for wl in workloads:
        for nw in args.workers:
            for side in sides:
                rs = res[(wl, nw, side["name"])]
                row = {"workload": wl, "workers": nw, "side": side["name"],
                       "errors": sum(r["errors"] for r in rs),
                       "first_errors": [e for r in rs
                                        for e in r["first_errors"]][:5],
                       "rounds": rs}
                for k in ("txn_per_s", "p50_ms", "p99_ms", "write_per_s",
                          "write_p50_ms", "write_p99_ms", "read_per_s",
                          "read_p50_ms", "read_p99_ms",
                          "server_cpu_us_per_txn"):
                    vals = [r[k] for r in rs if k in r]
                    row[k] = median(vals) if vals else None
                rows.append(row)
    med = {(r["workload"], r["workers"], r["side"]): r for r in rows}
    names = [s["name"] for s in sides]
    ratios = []
    if "quorafs" in names and "dqlite" in names:
        for wl in workloads:
            for nw in args.workers:
                q, d = med[(wl, nw, "quorafs")], med[(wl, nw, "dqlite")]
                per = [a["txn_per_s"] / b["txn_per_s"] if b["txn_per_s"]
                       else float("nan") for a, b in
                       zip(res[(wl, nw, "quorafs")], res[(wl, nw, "dqlite")])]
                ratios.append({
                    "workload": wl, "workers": nw,
                    "ratio": (q["txn_per_s"] / d["txn_per_s"]
                              if d["txn_per_s"] else float("nan")),
                    "ratio_per_round": per,
                    "p50_ratio": (q["p50_ms"] / d["p50_ms"]
                                  if d["p50_ms"] else float("nan"))})
    rat = {(r["workload"], r["workers"]): r for r in ratios}
    targets = []
    if ("kvwrite", 1) in rat:
        x = rat[("kvwrite", 1)]
        targets.append({"name": "single-worker writes (kvwrite, 1 worker): "
                        "quorafs/dqlite txn/s", "value": x["ratio"],
                        "threshold": WIRE_WRITE_TARGET,
                        "met": x["ratio"] >= WIRE_WRITE_TARGET})
    if WIRE_ERROR_WORKERS in args.workers and "quorafs" in names:
        errs = sum(med[(wl, WIRE_ERROR_WORKERS, "quorafs")]["errors"]
                   for wl in workloads)
        targets.append({"name": "errors at %d workers (quorafs)"
                        % WIRE_ERROR_WORKERS, "value": errs, "threshold": 0,
                        "met": errs == 0})
    findings = {}
    for side in sides:
        if side.get("log"):
            findings[side["name"]] = log_findings(side["log"])

    env = {
        "kernel": platform.release(), "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "filesystem": ({"type": pfs[1], "source": pfs[2],
                        "mountpoint": pfs[0]} if pfs else None),
        "quorafs": args.quorafs if args.servers is None else None,
        "daemon_args": args.daemon_args or "",
        "go_dqlite": pkg_version("go-dqlite"),
        "libdqlite": pkg_version("libdqlite0"),
        "cpu_steal_percent": steal,
        "loadavg_1min": {"start": load0, "end": load1},
    }
    try:
        env["commit"] = subprocess.run(
            ["git", "-C", REPO, "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        env["commit"] = None
    return {"mode": "wire",
            "settings": {"duration_s": args.duration,
                         "warmup_s": args.warmup, "rounds": args.rounds,
                         "key_size": args.key_size,
                         "value_size": args.value_size,
                         "workers": args.workers, "database": args.database,
                         "workloads": workloads},
            "servers": [{"name": s["name"], "servers": s["servers"],
                         "started_here": s["started"]} for s in sides],
            "environment": env, "results": rows, "ratios": ratios,
            "targets": targets, "notes": notes, "log_findings": findings}


def print_wire_report(rep, out=sys.stdout):
    s, e = rep["settings"], rep["environment"]
    steal = e["cpu_steal_percent"]
    print("quorafs bench --wire: dqlite-benchmark's workload over the wire "
          "protocol, %d round(s) x %g s per measurement (+%g s warm-up), "
          "medians over rounds" % (s["rounds"], s["duration_s"],
                                   s["warmup_s"]), file=out)
    fs = e["filesystem"]
    print("  kernel %s, %d CPUs, Python %s, quorafs %s%s; go-dqlite %s, "
          "libdqlite %s%s" % (
              e["kernel"], e["cpus"], e["python"], e["commit"] or "?",
              " " + e["daemon_args"] if e["daemon_args"] else "",
              e["go_dqlite"] or "-", e["libdqlite"] or "-",
              "; data on %s (%s)" % (fs["source"], fs["type"]) if fs else ""),
          file=out)
    for sv in rep["servers"]:
        print("  %-7s %s%s" % (sv["name"], ",".join(sv["servers"]),
                               " (single node started by this run: %s)" % (
                                   "quorafs mount" if sv["name"] == "quorafs"
                                   else "dqlite-demo")
                               if sv["started_here"] else ""), file=out)
    print("  one client for both (tools/qfwire.py, one connection and one "
          "process per worker); kvwrite = %s with a %d-byte key and a "
          "%d-byte value; kvreadwrite = half of those, half %s on the "
          "worker's own keys" % (WIRE_WRITE_SQL, s["key_size"],
                                 s["value_size"], WIRE_READ_SQL), file=out)
    la = e["loadavg_1min"]
    print("  CPU steal %s; 1-min load average %s at start, %s at end" % (
        "%.1f%%" % steal if steal is not None else "n/a (not reported)",
        "%.2f" % la["start"] if la["start"] is not None else "?",
        "%.2f" % la["end"] if la["end"] is not None else "?"), file=out)
    for n in rep["notes"]:
        print("  note: " + n, file=out)
    print(file=out)
    hdr = "%-11s %7s %-7s %9s %8s %8s %7s %10s %9s   %s" % (
        "workload", "workers", "server", "txn/s", "p50 ms", "p99 ms",
        "errors", "srv us/txn", "vs dqlite", "txn/s per round")
    print(hdr, file=out)
    print("-" * len(hdr), file=out)
    rat = {(r["workload"], r["workers"]): r for r in rep["ratios"]}
    for r in rep["results"]:
        ratio = ""
        if r["side"] == "quorafs" and (r["workload"], r["workers"]) in rat:
            ratio = "%.2fx" % rat[(r["workload"], r["workers"])]["ratio"]
        cpu = r.get("server_cpu_us_per_txn")
        print("%-11s %7d %-7s %9s %8.3f %8.3f %7d %10s %9s   %s" % (
            r["workload"], r["workers"], r["side"], fmt_rate(r["txn_per_s"]),
            r["p50_ms"], r["p99_ms"], r["errors"],
            "%.0f" % cpu if cpu is not None else "-", ratio,
            " ".join(fmt_rate(x["txn_per_s"]) for x in r["rounds"])),
            file=out)
        if r["workload"] == "kvreadwrite":
            print("%-11s %7s %-7s   writes %s/s p50 %.3f p99 %.3f ms; "
                  "reads %s/s p50 %.3f p99 %.3f ms" % (
                      "", "", "", fmt_rate(r["write_per_s"]),
                      r["write_p50_ms"], r["write_p99_ms"],
                      fmt_rate(r["read_per_s"]), r["read_p50_ms"],
                      r["read_p99_ms"]), file=out)
    errs = [r for r in rep["results"] if r["errors"]]
    if errs:
        print(file=out)
        print("errors (first few of each configuration):", file=out)
        for r in errs:
            print("  %s, %d worker(s), %s: %d errors: %s" % (
                r["workload"], r["workers"], r["side"], r["errors"],
                "; ".join(r["first_errors"])), file=out)
    for name, lines in rep["log_findings"].items():
        if lines:
            print(file=out)
            print("%s log: %d warning/error line(s), first ones:" % (
                name, len(lines)), file=out)
            for ln in lines[:10]:
                print("  " + ln, file=out)
    print(file=out)
    print("targets (reported, not asserted):", file=out)
    if not rep["targets"]:
        print("  none measured (need kvwrite with 1 worker and a dqlite node, "
              "or %d workers)" % WIRE_ERROR_WORKERS, file=out)
    for t in rep["targets"]:
        if isinstance(t["value"], float):
            per = rat[("kvwrite", 1)]["ratio_per_round"]
            print("  %s = %.2f  (target >= %.1f)  %s  per round: %s" % (
                t["name"], t["value"], t["threshold"],
                "MET" if t["met"] else "NOT MET",
                " ".join("%.2f" % x for x in per)), file=out)
        else:
            print("  %s: %d  (target %d)  %s" % (
                t["name"], t["value"], t["threshold"],
                "MET" if t["met"] else "NOT MET"), file=out)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="quorafs bench",
        description="Measure single-row autocommit INSERT transactions and "
        "autocommit point lookups (WAL mode, Python's sqlite3 on both sides) "
        "through a quorafs mount that this command starts, against raw SQLite "
        "on the same filesystem, with synchronous=FULL and NORMAL; raw and "
        "mounted runs alternate over several rounds and the medians are "
        "reported with the ratios and the targets (writes >= 50% of raw "
        "with synchronous=FULL, reads >= 90%).  Exit status 0 when the "
        "benchmark ran, whether or not the targets are met; 1 when it could "
        "not run; 130 when interrupted.",
        epilog="The daemon is started as 'quorafs mount --data-dir WD/data "
        "--mount WD/mnt --id 1 --address 127.0.0.1:PORT --bootstrap' and "
        "always stopped and unmounted on exit, also on Ctrl-C.")
    p.add_argument("--duration", type=float, default=5.0, metavar="SECONDS",
                   help="measured time per measurement (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, metavar="SECONDS",
                   help="unmeasured warm-up before each measurement "
                   "(default 1)")
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds of alternating raw/mounted measurements; the "
                   "table shows medians (default 2)")
    p.add_argument("--workdir", metavar="DIR",
                   help="directory in which a fresh scratch directory is "
                   "made for the raw databases, the data dir and the mount "
                   "point, all on DIR's filesystem (default: the current "
                   "directory, which must not be tmpfs or FUSE)")
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch directory (databases, daemon.log)")
    p.add_argument("--quorafs", metavar="PATH",
                   default=os.path.join(REPO, "build", "quorafs"),
                   help="the quorafs binary (default: %(default)s)")
    p.add_argument("--daemon-args", metavar="ARGS", default="",
                   help="extra arguments for 'quorafs mount', one "
                   "shell-quoted string; write it with '=' "
                   "(--daemon-args=--fsync-wal)")
    p.add_argument("--port", type=int, default=0,
                   help="the daemon's loopback raft port (default: a free one)")
    p.add_argument("--value-size", type=int, default=1024, metavar="BYTES",
                   help="size of each random value (default 1024)")
    p.add_argument("--rows", type=int, default=10000,
                   help="rows in the read table (default 10000)")
    p.add_argument("--read-table-in-wal", action="store_true",
                   help="leave the read table in the WAL (no checkpoint; a "
                   "process holds the database open) instead of "
                   "checkpointing it into the main file, so lookups read "
                   "WAL frames")
    p.add_argument("--workload", choices=("all", "write", "read"),
                   default="all", help="what to measure (default all)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the random keys (default 1)")
    p.add_argument("--start-timeout", type=int, default=60, metavar="SECONDS",
                   help="how long to wait for the daemon's 'ready:' "
                   "(default 60)")
    w = p.add_argument_group(
        "wire-protocol mode (--wire)",
        "Replays dqlite-benchmark's workload (kvwrite: INSERT OR REPLACE "
        "INTO model(key, value) VALUES(?, ?) with random --key-size-byte "
        "keys and --value-size-byte values; kvreadwrite: half of those, "
        "half SELECT value FROM model WHERE key = ? on keys the worker "
        "wrote) with N workers, each a process with one persistent "
        "connection of tools/qfwire.py, against a quorafs node and a "
        "dqlite node in one run, and prints txn/s, p50/p99, errors and "
        "the quorafs/dqlite ratio.  By default it starts both nodes "
        "itself on loopback in the scratch directory: 'quorafs mount' "
        "(whose --address port serves the protocol) and Debian's "
        "dqlite-demo (package go-dqlite); without dqlite-demo it measures "
        "quorafs only.  Targets (reported): quorafs >= 2x dqlite's "
        "single-worker kvwrite txn/s, and no errors at 8 workers.")
    w.add_argument("--wire", action="store_true",
                   help="measure over the dqlite wire protocol instead of "
                   "through the mount")
    w.add_argument("--workers", default="1,8", metavar="N[,N...]",
                   help="worker counts to measure (default 1,8)")
    w.add_argument("--wire-workload", default="all",
                   choices=("all",) + WIRE_WORKLOADS,
                   help="dqlite-benchmark workload (default all: both)")
    w.add_argument("--key-size", type=int, default=32, metavar="BYTES",
                   help="key size (default 32; values use --value-size)")
    w.add_argument("--servers", metavar="ADDR[,ADDR...]",
                   help="measure this quorafs cluster (leader discovery "
                   "over the list) instead of starting a node")
    w.add_argument("--dqlite", metavar="ADDR[,ADDR...]",
                   help="measure this dqlite cluster instead of starting "
                   "dqlite-demo")
    w.add_argument("--no-dqlite", action="store_true",
                   help="measure quorafs only")
    w.add_argument("--database", default="benchmark",
                   help="database name sent in OPEN (default benchmark, as "
                   "dqlite-benchmark's)")
    w.add_argument("--wire-timeout", type=float, default=30.0,
                   metavar="SECONDS",
                   help="socket timeout of one request (default 30)")
    p.add_argument("--json", action="store_true",
                   help="print the results as JSON on stdout instead of the "
                   "table (progress still goes to stderr)")
    a = p.parse_args(argv)
    if a.duration <= 0 or a.warmup < 0 or a.rounds < 1 or a.value_size < 1 \
            or a.rows < 1:
        p.error("--duration, --rounds, --value-size and --rows must be "
                "positive and --warmup not negative")
    a.quorafs = os.path.abspath(a.quorafs)
    try:
        a.workers = sorted(set(int(x) for x in a.workers.split(",") if x))
    except ValueError:
        p.error("--workers wants numbers separated by commas")
    if not a.workers or min(a.workers) < 1 or max(a.workers) > 256:
        p.error("--workers: between 1 and 256")
    if a.key_size < 1:
        p.error("--key-size must be positive")
    for opt in ("servers", "dqlite"):
        v = getattr(a, opt)
        if v is not None:
            v = [x for x in v.split(",") if x]
            if not v:
                p.error("--%s wants HOST:PORT[,HOST:PORT...]" % opt)
            setattr(a, opt, v)
    if not a.wire and (a.servers or a.dqlite or a.no_dqlite):
        p.error("--servers, --dqlite and --no-dqlite need --wire")
    return a


def main(argv):
    if argv and argv[0] == "--cluster":
        # A 3-node cluster on loopback: tools/bench_cluster.py.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_cluster
        return bench_cluster.main(argv[1:])
    if len(argv) == 2 and argv[0] == "--_wire_worker":
        try:
            print(json.dumps(wire_worker_main(json.loads(argv[1]))),
                  flush=True)
            return 0
        except KeyboardInterrupt:
            return 130
        except Exception as e:
            print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
            return 1
    if len(argv) == 2 and argv[0] == "--_worker":
        try:
            print(json.dumps(worker_main(json.loads(argv[1]))), flush=True)
            return 0
        except (BenchError, sqlite3.Error, OSError) as e:
            print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    args = parse_args(argv)
    state = {}

    def on_term(signum, frame):
        raise KeyboardInterrupt
    # SIGINT explicitly too: a shell starts background jobs with SIGINT
    # ignored, and Ctrl-C / kill -INT must still stop and unmount cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)

    rc = 0
    rep = None
    try:
        rep = run(args, state)
    except BenchError as e:
        log("error: %s" % e)
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except Exception as e:  # report, clean up, fail
        log("error: %s: %s" % (type(e).__name__, e))
        rc = 1
    finally:
        # Ignore further Ctrl-C while the daemon is stopped and unmounted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        problems = cleanup(state, args.keep)
        for pr in problems:
            log("cleanup: " + pr)
    if rep is not None and rc == 0:
        if args.json:
            json.dump(rep, sys.stdout, indent=2)
            print()
        elif rep.get("mode") == "wire":
            print_wire_report(rep)
        else:
            print_report(rep)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
