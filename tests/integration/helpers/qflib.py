"""Shared code of the integration tests: run quorafs nodes, clean up their
mounts whatever happens, and talk to databases through the mount.

Imported by conftest.py and the test modules (conftest puts this folder on
sys.path).  Everything binds to 127.0.0.1 only."""
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HELPERS = Path(__file__).resolve().parent
QUORAFS_BIN = os.environ.get("QUORAFS_BIN", str(REPO / "build" / "quorafs"))
_bin = QUORAFS_BIN  # the session's private copy once conftest made it


def quorafs_bin():
    """The binary the tests run: a copy taken at session start, so that a
    rebuild during the run does not mix two versions of the daemon."""
    return _bin


def use_binary_copy(dest_dir):
    global _bin
    dest = Path(dest_dir) / "quorafs"
    shutil.copy2(QUORAFS_BIN, dest)
    _bin = str(dest)
    return _bin
FUSECTL = Path("/sys/fs/fuse/connections")
PYTHON = sys.executable

READY_TIMEOUT = 90.0  # a restart may re-hash or replay a large log
STOP_TIMEOUT = 30.0

_used_ports = set()


def sanitized():
    """The daemon under test is an ASan build (tools/test.sh's second
    run): its allocator keeps freed memory in quarantine, so memory
    figures say nothing about quorafs's own use."""
    return "ASAN_OPTIONS" in os.environ


def child_pids(pid):
    """Process ids of @pid's children (the daemon's SQL worker)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def free_port():
    """A loopback port that is free now and not handed out before in this
    session (random, to stay clear of other developers' daemons)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in _used_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _used_ports.add(port)
        return port
    raise RuntimeError("no free loopback port found")


# ---- mounts ----

def _unescape_mountinfo(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mount_entry(path):
    """(device number, fstype) of the mount at @path from mountinfo, or
    None.  Reads only /proc: safe on a wedged FUSE mount."""
    path = os.path.abspath(str(path))  # no realpath: it would stat
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 10 or _unescape_mountinfo(parts[4]) != path:
                continue
            sep = parts.index("-")
            major, minor = (int(x) for x in parts[2].split(":"))
            found = (os.makedev(major, minor), parts[sep + 1])
    return found  # the last one is the top of the stack


def is_mounted(path):
    return mount_entry(path) is not None


def ensure_fusectl():
    """Mount fusectl so that a wedged connection can be aborted."""
    if not FUSECTL.is_dir():
        return False
    with open("/proc/self/mountinfo") as f:
        if any(line.split()[4] == str(FUSECTL) for line in f):
            return True
    r = subprocess.run(["mount", "-t", "fusectl", "none", str(FUSECTL)],
                       capture_output=True, text=True)
    return r.returncode == 0


def abort_fuse(path):
    """Abort the FUSE connection mounted at @path (fusectl).  Every
    request in flight or to come fails; nothing here touches the mount."""
    e = mount_entry(path)
    if e is None or not e[1].startswith("fuse"):
        return False
    abort = FUSECTL / str(e[0]) / "abort"
    try:
        with open(abort, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def force_unmount(path, abort=False):
    """Unmount @path whatever its state: fusermount3 -u, then abort the
    connection through fusectl and umount -l.  Returns True when gone."""
    path = str(path)
    for _ in range(5):  # a path can hold stacked mounts
        if not is_mounted(path):
            return True
        if abort:
            abort_fuse(path)
        r = subprocess.run(["fusermount3", "-u", "-q", path],
                           capture_output=True, timeout=30)
        if r.returncode == 0 and not is_mounted(path):
            continue
        abort_fuse(path)
        subprocess.run(["umount", "-l", path], capture_output=True,
                       timeout=30)
        if is_mounted(path):
            subprocess.run(["fusermount3", "-u", "-z", "-q", path],
                           capture_output=True, timeout=30)
    return not is_mounted(path)


# ---- processes ----

def kill_pid(proc, timeout=10.0):
    """SIGKILL a Popen and reap it; returns its exit status or None."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


class DaemonError(AssertionError):
    pass


class Node:
    """One quorafs daemon with its data dir, mount point and log, all
    under @base.  The log file accumulates every start of the node."""

    def __init__(self, manager, base, name="node", node_id=1, port=None):
        self.manager = manager
        self.name = name
        self.base = Path(base)
        self.data_dir = self.base / f"{name}-data"
        self.mount = self.base / f"{name}-mnt"
        self.log_path = self.base / f"{name}.log"
        self.id = node_id
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = None
        self.start_offset = 0  # where the current run's log starts
        self.last_ready_seconds = None

    # -- paths --
    def path(self, rel):
        """Path of @rel inside the mount."""
        return self.mount / rel

    def backing(self, rel):
        """Backing file of @rel under the data dir."""
        return self.data_dir / "db" / rel

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- log --
    def log(self, since=None):
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        start = self.start_offset if since is None else since
        return data[start:].decode(errors="replace")

    def log_all(self):
        return self.log(since=0)

    def log_tail(self, n=80):
        return "\n".join(self.log_all().splitlines()[-n:])

    # -- lifecycle --
    def args(self, bootstrap=True, identity=True, extra=()):
        a = [quorafs_bin(), "mount", "--data-dir", str(self.data_dir),
             "--mount", str(self.mount)]
        if identity:
            a += ["--id", str(self.id), "--address", self.address]
        if bootstrap:
            a.append("--bootstrap")
        return a + list(extra)

    def launch(self, args):
        """Start the daemon with @args without waiting for it."""
        assert not self.alive(), f"{self.name} is already running"
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            logf.write(f"==== {' '.join(args)}\n".encode())
            logf.flush()
            self.start_offset = logf.tell()
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                cwd=str(self.base), start_new_session=True)
        return self.proc

    def start(self, bootstrap=True, identity=True, extra=(),
              timeout=READY_TIMEOUT):
        """Start and wait for "ready:".  Returns the seconds it took."""
        t0 = time.monotonic()
        self.launch(self.args(bootstrap, identity, extra))
        self.wait_ready(timeout, t0)
        self.last_ready_seconds = time.monotonic() - t0
        return self.last_ready_seconds

    def wait_ready(self, timeout=READY_TIMEOUT, t0=None):
        t0 = t0 or time.monotonic()
        while True:
            if "ready:" in self.log():
                if not is_mounted(self.mount):
                    raise DaemonError(
                        f"{self.name} said ready but {self.mount} is not "
                        f"mounted\n--- log ---\n{self.log_tail()}")
                return
            rc = self.proc.poll()
            if rc is not None:
                raise DaemonError(
                    f"{self.name} exited with {rc} before ready\n"
                    f"--- log ---\n{self.log_tail()}")
            if time.monotonic() - t0 > timeout:
                self.kill9()
                force_unmount(self.mount)
                raise DaemonError(
                    f"{self.name} not ready after {timeout:.0f}s\n"
                    f"--- log ---\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self, check=True, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; SIGKILL if it does not exit in time.  With
        @check, a clean exit (0) and an unmounted mount point are
        asserted."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_pid(self.proc)
                force_unmount(self.mount, abort=True)
                raise DaemonError(
                    f"{self.name} did not exit within {timeout:.0f}s of "
                    f"SIGTERM\n--- log ---\n{self.log_tail()}")
        still = is_mounted(self.mount)
        if still:
            force_unmount(self.mount)
        if check:
            if rc != 0:
                raise DaemonError(
                    f"{self.name} exited with {rc} on SIGTERM\n"
                    f"--- log ---\n{self.log_tail()}")
            if still:
                raise DaemonError(
                    f"{self.name} exited but left {self.mount} mounted")
        return rc

    def kill9(self):
        """kill -9 the daemon; the mount is left stale."""
        return kill_pid(self.proc)

    def unmount_stale(self):
        assert not self.alive()
        assert force_unmount(self.mount), f"cannot unmount {self.mount}"

    def restart(self, **kw):
        self.stop()
        return self.start(**kw)

    def crash_restart(self, **kw):
        self.kill9()
        self.unmount_stale()
        return self.start(**kw)

    def cleanup(self):
        """Kill by pid and unmount; never raises."""
        try:
            if self.alive():
                # A SIGKILLed daemon whose own SQL sessions still had
                # files open on its mount cannot finish exiting until the
                # FUSE connection is aborted (README: known limits).
                kill_pid(self.proc, timeout=3)
            if self.alive():  # stuck in the kernel: abort and retry
                abort_fuse(self.mount)
                kill_pid(self.proc, timeout=20)
        except Exception:
            pass
        try:
            force_unmount(self.mount)
        except Exception:
            pass


class Manager:
    """Per-test owner of nodes and client processes: kills and unmounts
    them all at teardown, and runs a watchdog that aborts the mounts if
    the test outlives its deadline (so a wedged mount fails the test
    instead of hanging the suite)."""

    def __init__(self, base, deadline):
        self.base = Path(base)
        self.nodes = []
        self.procs = []
        self.extra_mounts = []
        self.deadline = deadline
        self.fired = False
        self.timer = threading.Timer(deadline, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def node(self, name="node", node_id=1, port=None):
        n = Node(self, self.base, name, node_id, port)
        self.nodes.append(n)
        return n

    def spawn(self, args, **kw):
        """Popen a client process that teardown will kill."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen([str(a) for a in args], **kw)
        self.procs.append(p)
        return p

    def track_mount(self, path):
        self.extra_mounts.append(Path(path))

    def _fire(self):
        self.fired = True
        for n in self.nodes:
            abort_fuse(n.mount)
        for p in self.procs:
            kill_pid(p, timeout=1)
        for n in self.nodes:
            kill_pid(n.proc, timeout=1)

    def cleanup(self):
        self.timer.cancel()
        for p in self.procs:
            kill_pid(p, timeout=5)
            if p.poll() is None:  # blocked on a dead mount
                for n in self.nodes:
                    abort_fuse(n.mount)
                kill_pid(p, timeout=10)
        for n in self.nodes:
            n.cleanup()
        for m in self.extra_mounts:
            try:
                force_unmount(m)
            except Exception:
                pass


# ---- running quorafs and sqlite3 ----

def run_quorafs(args, timeout=30, cwd=None):
    """Run the binary to completion; returns CompletedProcess (text)."""
    return subprocess.run([quorafs_bin()] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=cwd)


def cli(db, script, mode=None, check=True, timeout=120, args=()):
    """Run the sqlite3 CLI on @db with @script on stdin.  With @mode, the
    connection first switches to that journal mode (quietly).  Returns
    stdout; raises on a non-zero exit when @check."""
    pre = ""
    if mode is not None:
        pre = (".output /dev/null\n"
               f"PRAGMA journal_mode={mode};\n"
               ".output stdout\n")
    r = subprocess.run(["sqlite3", "-batch", "-bail", *args, str(db)],
                       input=pre + script, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(
            f"sqlite3 {db} failed ({r.returncode}): {r.stderr.strip()}\n"
            f"script:\n{script[:2000]}")
    return r if not check else r.stdout


def connect(db, mode=None, timeout=10.0):
    """A Python sqlite3 connection in autocommit mode (explicit BEGIN /
    COMMIT) with a busy timeout; close it (contextlib.closing)."""
    conn = sqlite3.connect(str(db), timeout=timeout, isolation_level=None)
    if mode is not None:
        got = conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
        assert got == mode, f"journal_mode={mode} gave {got}"
    return conn


def integrity(db, quick=False):
    """PRAGMA integrity_check (or quick_check) through the CLI."""
    what = "quick_check" if quick else "integrity_check"
    return cli(db, f"PRAGMA {what};\n", timeout=300).strip()


def dump(db):
    return cli(db, ".dump\n", timeout=300)
