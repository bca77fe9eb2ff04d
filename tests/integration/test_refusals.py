"""What quorafs refuses, and how: non-SQLite data (EINVAL, nothing stored),
bad flags, mount point and data dir problems, a second daemon, a stale
mount, unlink/rename of a database (EPERM), dropping committed WAL frames
that are not checkpointed (EIO), a foreign node id; and what it must
accept: --bootstrap again, a restart without --id/--address."""
import errno
import hashlib
import os
import re
import subprocess

import pytest

from qflib import (cli, dump, free_port, integrity, is_mounted,
                   kill_pid, quorafs_bin)


def refused(qf, args, mount=None, timeout=20):
    """Run quorafs expecting it to refuse: it must exit non-zero, soon,
    without mounting.  Returns its stderr."""
    p = qf.spawn([quorafs_bin(), *args], stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    if mount is not None:
        qf.track_mount(mount)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_pid(p)
        pytest.fail(f"quorafs {' '.join(map(str, args))} kept running: "
                    "it was not refused")
    assert p.returncode != 0, \
        f"exit 0 for {args}; stderr: {err}"
    assert p.returncode > 0, f"killed by a signal ({p.returncode}): {err}"
    assert err.strip(), "refused without saying why"
    if mount is not None:
        assert not is_mounted(mount), f"{mount} got mounted anyway"
    return err


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() \
        if path.exists() else None


# ---- flags ----

def base_args(tmp_path):
    return {"--data-dir": str(tmp_path / "data"),
            "--mount": str(tmp_path / "mnt"),
            "--id": "1", "--address": f"127.0.0.1:{free_port()}"}


BAD_FLAGS = {
    # name: (changes to the base flags, extra args, text the error names)
    "id_zero": ({"--id": "0"}, [], "--id"),
    "id_text": ({"--id": "abc"}, [], "--id"),
    "id_negative": ({"--id": "-3"}, [], "--id"),
    "address_nonsense": ({"--address": "nonsense"}, [], "--address"),
    "address_no_port": ({"--address": "127.0.0.1:"}, [], "--address"),
    "address_big_port": ({"--address": "127.0.0.1:99999"}, [], "--address"),
    "unknown_option": ({}, ["--frobnicate"], "--frobnicate"),
    "missing_value": ({}, ["--snapshot-threshold"], "--snapshot-threshold"),
    "bad_threshold": ({}, ["--snapshot-threshold", "many"],
                      "--snapshot-threshold"),
    "stray_argument": ({}, ["stray"], "stray"),
    "bad_log_level": ({}, ["--log-level", "loud"], "loud"),
    "missing_mount": ({"--mount": None}, [], "--mount"),
    "missing_data_dir": ({"--data-dir": None}, [], "--data-dir"),
    "bootstrap_and_join": ({}, ["--bootstrap", "--join", "127.0.0.1:1"],
                           "--join"),
    "heartbeat_not_below_election": ({}, ["--election-timeout", "100",
                                          "--heartbeat-timeout", "100"],
                                     "--heartbeat-timeout"),
    "bad_election_timeout": ({}, ["--election-timeout", "soon"],
                             "--election-timeout"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flags(qf, tmp_path, case):
    change, extra, names = BAD_FLAGS[case]
    flags = base_args(tmp_path)
    flags.update(change)
    args = ["mount"]
    for k, v in flags.items():
        if v is not None:
            args += [k, v]
    err = refused(qf, args + extra, mount=tmp_path / "mnt")
    assert names in err, f"the error does not name {names}: {err}"
    assert not (tmp_path / "data").exists(), "a bad flag created the data dir"


def test_help(tmp_path):
    r = subprocess.run([quorafs_bin(), "mount", "--help"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0
    for flag in ("--data-dir", "--mount", "--id", "--address", "--bootstrap"):
        assert flag in r.stdout


def test_new_data_dir_needs_id_and_address(qf, tmp_path):
    err = refused(qf, ["mount", "--data-dir", tmp_path / "data", "--mount",
                       tmp_path / "mnt", "--bootstrap"],
                  mount=tmp_path / "mnt")
    assert "--id" in err and "--address" in err, err


# ---- mount point and data dir ----

def test_mount_point_inside_data_dir(qf, tmp_path):
    data = tmp_path / "data"
    err = refused(qf, ["mount", "--data-dir", data, "--mount", data / "mnt",
                       "--id", "1", "--address", f"127.0.0.1:{free_port()}",
                       "--bootstrap"], mount=data / "mnt")
    assert "data dir" in err and "mount point" in err, err


def test_data_dir_inside_mount_point(qf, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    err = refused(qf, ["mount", "--data-dir", mnt / "data", "--mount", mnt,
                       "--id", "1", "--address", f"127.0.0.1:{free_port()}",
                       "--bootstrap"], mount=mnt)
    # The problem is the nesting, not that the mount point is not empty
    # (the daemon itself would have made it so by creating the data dir).
    assert "data dir" in err and "mount point" in err, err
    assert list(mnt.iterdir()) == [], \
        "the refusal left files in the mount point"


def test_mount_point_not_empty(qf, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "keep.txt").write_text("mine")
    err = refused(qf, ["mount", "--data-dir", tmp_path / "data",
                       "--mount", mnt, "--id", "1",
                       "--address", f"127.0.0.1:{free_port()}",
                       "--bootstrap"], mount=mnt)
    assert "not empty" in err, err
    assert (mnt / "keep.txt").read_text() == "mine"


def test_data_dir_on_fuse_refused(qf, node, tmp_path):
    err = refused(qf, ["mount", "--data-dir", node.path("dd"), "--mount",
                       tmp_path / "mnt2", "--id", "2", "--address",
                       f"127.0.0.1:{free_port()}", "--bootstrap"],
                  mount=tmp_path / "mnt2")
    assert "FUSE" in err, err
    db = node.path("still.db")
    cli(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    assert cli(db, "SELECT x FROM t;").strip() == "1"


def test_second_daemon_same_data_dir(qf, node, tmp_path):
    db = node.path("a.db")
    cli(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    err = refused(qf, ["mount", "--data-dir", node.data_dir, "--mount",
                       tmp_path / "mnt2", "--id", "1", "--address",
                       node.address, "--bootstrap"], mount=tmp_path / "mnt2")
    assert "another" in err and "daemon" in err, err
    # The first daemon is unharmed.
    assert node.alive()
    cli(db, "INSERT INTO t VALUES (2);")
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "3"
    node.restart()
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "3"


def test_stale_mount_detected(qf, node):
    db = node.path("s.db")
    cli(db, "PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES (7);")
    node.kill9()
    assert is_mounted(node.mount)
    err = refused(qf, node.args()[1:])
    assert "fusermount3 -u" in err and str(node.mount) in err, err
    assert is_mounted(node.mount), "the refusal should leave the mount alone"
    # The fix it offers works.
    r = subprocess.run(["fusermount3", "-u", str(node.mount)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    node.start()
    assert cli(db, "SELECT x FROM t;").strip() == "7"
    assert integrity(db) == "ok"


# ---- node identity ----

def test_bootstrap_again_is_harmless(node):
    db = node.path("b.db")
    cli(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    node.restart(bootstrap=True)
    assert "bootstrapped a" not in node.log(), node.log()
    assert "bootstrapped a" in node.log_all()  # the first start did
    cli(db, "INSERT INTO t VALUES (2);")
    node.restart(bootstrap=True)
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "3"
    assert integrity(db) == "ok"


def test_restart_without_id_and_address(node):
    db = node.path("r.db")
    cli(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    node.restart(identity=False, bootstrap=False)
    assert cli(db, "SELECT x FROM t;").strip() == "1"
    cli(db, "INSERT INTO t VALUES (2);")
    node.restart(identity=False, bootstrap=False)
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "3"


@pytest.mark.parametrize("what", ["id", "address"])
def test_restart_with_other_identity_refused(qf, node, what):
    db = node.path("i.db")
    cli(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    node.stop()
    args = node.args()
    if what == "id":
        args[args.index("--id") + 1] = "2"
    else:
        other = free_port()
        args[args.index("--address") + 1] = f"127.0.0.1:{other}"
    err = refused(qf, args[1:], mount=node.mount)
    if what == "id":
        assert re.search(r"\bid\b.*\b2\b", err), err
    else:
        assert "address" in err and str(other) in err, err
    # Nothing was damaged: the right identity still starts.
    node.start()
    assert cli(db, "SELECT x FROM t;").strip() == "1"
    assert integrity(db) == "ok"


# ---- data ----

def sqlite_page1_prefix(tmp_path, n):
    """The first @n bytes of a real SQLite database (page size 4096)."""
    p = tmp_path / "real.db"
    if not p.exists():
        subprocess.run(["sqlite3", str(p), "CREATE TABLE t(x);"], check=True)
    return p.read_bytes()[:n]


NON_SQLITE = {
    "text": lambda tp: (b"hello\n", 0),
    "full_page_of_junk": lambda tp: (bytes(range(256)) * 16, 0),
    "zero_page": lambda tp: (bytes(4096), 0),
    "page_at_offset": lambda tp: (sqlite_page1_prefix(tp, 4096), 4096),
    "header_but_partial_page": lambda tp: (sqlite_page1_prefix(tp, 512), 0),
}


@pytest.mark.parametrize("case", sorted(NON_SQLITE))
def test_non_sqlite_write_refused(node, tmp_path, case):
    data, off = NON_SQLITE[case](tmp_path)
    target = node.path("x.db")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, data, off)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError):  # a retry is no different
            os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    check_nothing_stored(node, "x.db")


def test_shell_redirect_refused(node):
    r = subprocess.run(["bash", "-c", f"echo hello > {node.path('x.db')}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "Invalid argument" in r.stderr, r.stderr
    r = subprocess.run(["bash", "-c",
                        f"mkdir -p {node.path('d')} && "
                        f"cp /etc/os-release {node.path('d/y.db')}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "Invalid argument" in r.stderr, r.stderr
    check_nothing_stored(node, "x.db")
    check_nothing_stored(node, "d/y.db")


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_copying_a_database_in_refused_backup_works(node, tmp_path, mode):
    """A database file copied into the mount (bytes written outside any
    transaction) is refused, since its content would bypass raft; the
    sqlite3 .restore command, which writes through a transaction, works."""
    src = tmp_path / f"src-{mode}.db"
    subprocess.run(["sqlite3", str(src),
                    f"PRAGMA journal_mode={mode}; CREATE TABLE t(x); "
                    "INSERT INTO t VALUES (1), (2), (3);"],
                   check=True, capture_output=True, timeout=30)
    r = subprocess.run(["cp", str(src), str(node.path("copied.db"))],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "cp of a database into the mount succeeded"
    check_nothing_stored(node, "copied.db")
    cli(node.path("restored.db"), f".restore {src}\n")
    assert cli(node.path("restored.db"), "SELECT sum(x) FROM t;").strip() == "6"
    node.restart()
    assert cli(node.path("restored.db"), "SELECT sum(x) FROM t;").strip() == "6"
    assert integrity(node.path("restored.db")) == "ok"


def check_nothing_stored(node, rel):
    def empty():
        backing = node.backing(rel)
        assert not backing.exists() or backing.stat().st_size == 0, \
            f"{backing} holds {backing.stat().st_size} bytes"
        assert node.path(rel).stat().st_size == 0
        assert node.path(rel).read_bytes() == b""

    empty()
    node.restart()
    empty()
    # The empty file is still usable as a new database.
    cli(node.path(rel), "CREATE TABLE t(x); INSERT INTO t VALUES (42);")
    assert cli(node.path(rel), "SELECT x FROM t;").strip() == "42"


UNALIGNED = {
    "bytes_at_100": (100, 10),
    "page_at_4608": (4096 + 512, 4096),
    "partial_page_at_4096": (4096, 100),
    "partial_first_page": (0, 50),
    "header_rewrite_at_16": (16, 2),
}


@pytest.mark.parametrize("mode", ["delete", "wal"])
@pytest.mark.parametrize("case", sorted(UNALIGNED))
def test_unaligned_write_refused(node, case, mode):
    off, size = UNALIGNED[case]
    db = node.path("u.db")
    cli(db, f"PRAGMA journal_mode={mode}; CREATE TABLE t(x);"
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
            "WHERE i < 200) INSERT INTO t SELECT randomblob(100) FROM c;")
    before_dump, before_file = dump(db), sha(node.backing("u.db"))
    assert before_file == sha(db)
    fd = os.open(db, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"\xa5" * size, off)
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    assert sha(node.backing("u.db")) == before_file, "the backing file changed"
    assert sha(db) == before_file, "the mount shows bytes that were refused"
    assert dump(db) == before_dump
    assert integrity(db) == "ok"
    node.restart()
    assert sha(db) == before_file
    assert dump(db) == before_dump
    cli(db, "INSERT INTO t VALUES (1);")
    assert integrity(db) == "ok"


@pytest.mark.parametrize("mode", ["off", "memory"])
def test_unsupported_journal_modes_give_eio(node, mode):
    db = node.path("m.db")
    cli(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    before = sha(db)
    r = cli(db, f"PRAGMA journal_mode={mode}; INSERT INTO t VALUES (2);",
            check=False)
    assert r.returncode != 0
    assert "disk I/O error" in r.stderr, r.stderr
    assert sha(db) == before
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "1"
    assert integrity(db) == "ok"
    cli(db, "INSERT INTO t VALUES (3);")
    node.restart()
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "4"
    assert integrity(db) == "ok"


# ---- unlink and rename ----

@pytest.mark.parametrize("rel", ["e.db", "sub/e.db"])
def test_unlink_and_rename_of_database_refused(node, rel):
    if "/" in rel:
        os.makedirs(node.path("sub"))
    db = node.path(rel)
    cli(db, "PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES (5);")
    other = node.path("other.db")
    cli(other, "CREATE TABLE o(y);")
    before = dump(db)

    def eperm(fn, *args):
        with pytest.raises(OSError) as e:
            fn(*args)
        assert e.value.errno == errno.EPERM, f"{fn.__name__}{args}: {e.value}"

    eperm(os.unlink, db)
    eperm(os.rename, db, node.path("renamed.db"))
    eperm(os.rename, other, db)
    r = subprocess.run(["rm", "-f", str(db)], capture_output=True, text=True)
    assert r.returncode != 0 and "not permitted" in r.stderr
    r = subprocess.run(["mv", str(db), str(node.path("moved.db"))],
                       capture_output=True, text=True)
    assert r.returncode != 0

    assert db.exists() and not node.path("renamed.db").exists()
    assert not node.path("moved.db").exists()
    assert node.backing(rel).exists()
    assert dump(db) == before
    assert cli(other, "SELECT name FROM sqlite_master;").strip() == "o"
    node.restart()
    assert dump(db) == before
    cli(db, "INSERT INTO t VALUES (6);")
    assert cli(db, "SELECT sum(x) FROM t;").strip() == "11"


# ---- committed WAL frames ----

def test_committed_wal_frames_cannot_be_dropped(node):
    """Committed frames not yet checkpointed into the database file are the
    only local copy of those transactions: deleting the -wal, truncating
    it below them or writing a new WAL header over them gets EIO, and the
    data stays.  Once checkpointed, the -wal may go."""
    import sqlite3
    from contextlib import closing
    db = node.path("keep.db")
    wal = node.path("keep.db-wal")
    with closing(sqlite3.connect(str(db), isolation_level=None)) as c:
        assert c.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
        c.execute("PRAGMA wal_autocheckpoint=0")
        c.execute("CREATE TABLE t(x)")
        c.execute("INSERT INTO t VALUES (randomblob(5000))")
        assert wal.stat().st_size > 5000
        header = open(wal, "rb").read(32)
        other = header[:16] + bytes(b ^ 0x5a for b in header[16:24]) + \
            header[24:]

        def eio(fn):
            with pytest.raises(OSError) as e:
                fn()
            assert e.value.errno == errno.EIO, e.value

        eio(lambda: os.unlink(wal))
        eio(lambda: os.truncate(wal, 32))
        # A writer of the WAL holds its write lock, as SQLite's do: the
        # refused bytes sit in the kernel's page cache until write()
        # returns, and the rebuild must not read them (README).
        c.execute("BEGIN IMMEDIATE")
        with open(wal, "r+b", buffering=0) as f:
            eio(lambda: f.write(other))
        c.execute("ROLLBACK")
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        assert "does not see the last committed" in node.log()
        # Checkpointed, the frames are in the file: truncation may go.
        c.execute("PRAGMA wal_checkpoint(PASSIVE)")
        os.truncate(wal, 0)
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    assert integrity(db) == "ok"
