"""Every acknowledged commit went through Raft: it survives a clean restart,
a kill -9, and even the loss of every backing file (the node rebuilds the
databases from its raft log and snapshots)."""
import hashlib
import shutil
from contextlib import closing

import pytest

from qflib import cli, connect, integrity

SMALL_SNAPSHOTS = ["--snapshot-threshold", "16", "--snapshot-trailing", "16"]


def payload(i):
    h = hashlib.sha256(str(i).encode()).hexdigest()
    return (h * (1 + i % 20))[: 64 + (i * 37) % 1500]


def commit_rows(db, mode, first, n):
    """n autocommit inserts, ids first..first+n-1; each returned = acked."""
    with closing(connect(db, mode)) as c:
        if first == 1:
            c.execute("CREATE TABLE r(id INTEGER PRIMARY KEY, p TEXT)")
        for i in range(first, first + n):
            c.execute("INSERT INTO r VALUES (?, ?)", (i, payload(i)))
        # An update and a delete, each its own transaction.
        c.execute("UPDATE r SET p = p || '+' WHERE id = ?", (first,))
        c.execute("UPDATE r SET p = ? WHERE id = ?", (payload(first), first))


def check_rows(db, last):
    """Rows 1..last, each with its own payload; integrity ok."""
    with closing(connect(db)) as c:
        rows = c.execute("SELECT id, p FROM r ORDER BY id").fetchall()
    assert [r[0] for r in rows] == list(range(1, last + 1)), \
        f"expected ids 1..{last}, got {len(rows)} rows"
    bad = [i for i, p in rows if p != payload(i)]
    assert not bad, f"rows with a wrong payload: {bad[:10]}"
    assert integrity(db) == "ok"


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_commits_survive_restart_and_kill9(node, mode):
    db = node.path("d.db")
    commit_rows(db, mode, 1, 200)
    check_rows(db, 200)

    node.restart()
    check_rows(db, 200)

    commit_rows(db, mode, 201, 200)
    node.crash_restart()
    check_rows(db, 400)

    # The crash left nothing behind that breaks later commits.
    commit_rows(db, mode, 401, 50)
    node.crash_restart()
    check_rows(db, 450)
    node.restart()
    check_rows(db, 450)


def remove_backing_files(node):
    db_dir = node.data_dir / "db"
    assert any(db_dir.iterdir()), "no backing files to remove"
    shutil.rmtree(db_dir)
    db_dir.mkdir()


@pytest.mark.parametrize("stop", ["clean", "kill9"])
@pytest.mark.parametrize("snapshots", ["log", "snapshots"])
def test_rebuild_from_raft(qf, snapshots, stop):
    """The backing files are only a copy: removed while the node is down,
    they come back from raft with every acknowledged commit."""
    extra = SMALL_SNAPSHOTS if snapshots == "snapshots" else []
    node = qf.node()
    node.start(extra=extra)
    commit_rows(node.path("w.db"), "wal", 1, 150)
    commit_rows(node.path("j.db"), "delete", 1, 150)
    cli(node.path("w.db"), "CREATE INDEX rp ON r(p);")
    if snapshots == "snapshots":
        snaps = list((node.data_dir / "raft").glob("snapshot-*"))
        assert snaps, "no snapshot taken with --snapshot-threshold 16"

    if stop == "clean":
        node.stop()
    else:
        node.kill9()
        node.unmount_stale()
    remove_backing_files(node)
    node.start(extra=extra, bootstrap=False)
    for rel in ("w.db", "j.db"):
        check_rows(node.path(rel), 150)
    assert cli(node.path("w.db"),
               "SELECT count(*) FROM sqlite_master WHERE name = 'rp';") \
        .strip() == "1"
    if snapshots == "snapshots":
        assert "restoring from snapshot" in node.log()

    # The rebuilt node goes on committing, and keeps it across a restart.
    commit_rows(node.path("w.db"), "wal", 151, 20)
    commit_rows(node.path("j.db"), "delete", 151, 20)
    node.restart(extra=extra)
    check_rows(node.path("w.db"), 170)
    check_rows(node.path("j.db"), 170)


def test_restart_keeps_current_db_not_written_since_snapshot(qf):
    """A database whose files are current is not rebuilt from the snapshot
    at restart, even when its last write is older than the snapshot (other
    databases were written since)."""
    node = qf.node()
    node.start(extra=SMALL_SNAPSHOTS)
    commit_rows(node.path("quiet.db"), "wal", 1, 40)
    # Enough entries on another database for snapshots past quiet.db's
    # last write.
    commit_rows(node.path("busy.db"), "wal", 1, 80)
    assert list((node.data_dir / "raft").glob("snapshot-*"))
    node.restart(extra=SMALL_SNAPSHOTS)
    log = node.log()
    assert "restoring from snapshot" not in log, \
        "a clean restart rebuilt current files from the snapshot:\n" + log
    assert "re-hashing" not in log, \
        "a clean restart re-hashed current files:\n" + log
    check_rows(node.path("quiet.db"), 40)
    check_rows(node.path("busy.db"), 80)
