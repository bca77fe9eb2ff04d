"""Integration tests: real quorafs daemons, real mounts, real SQLite clients.

Fixtures:
  qf        a Manager (helpers/qflib.py): qf.node() makes nodes, qf.spawn()
            starts client processes; at teardown every process is killed by
            pid and every mount is unmounted (fusectl abort if wedged), also
            when the test failed.  A watchdog aborts the test's mounts after
            its deadline (marker `deadline(seconds)`, default 240 s).
  node      a started single-node cluster (bootstrap) from qf.

Environment: QUORAFS_BIN (default <repo>/build/quorafs), QF_SEED (random
seed of the crash test)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))

import qflib  # noqa: E402

DEFAULT_DEADLINE = 240.0
_timings = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long test, runs by default; skip with -m 'not slow'")
    config.addinivalue_line(
        "markers", "deadline(seconds): watchdog limit of a test")


@pytest.fixture(scope="session", autouse=True)
def _environment(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the integration tests mount FUSE filesystems: run as root")
    if not os.access(qflib.QUORAFS_BIN, os.X_OK):
        pytest.fail(f"quorafs binary not found at {qflib.QUORAFS_BIN} "
                    "(build it: meson setup build && ninja -C build, "
                    "or set QUORAFS_BIN)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing")
    qflib.ensure_fusectl()
    qflib.use_binary_copy(tmp_path_factory.mktemp("bin"))
    yield


@pytest.fixture
def qf(request, tmp_path):
    marker = request.node.get_closest_marker("deadline")
    deadline = float(marker.args[0]) if marker else DEFAULT_DEADLINE
    m = qflib.Manager(tmp_path, deadline)
    request.node._qf_manager = m
    yield m
    m.cleanup()
    if m.fired:
        pytest.fail(f"watchdog: the test ran past its {deadline:.0f} s "
                    "deadline; its mounts were aborted and daemons killed")


@pytest.fixture
def node(qf):
    n = qf.node()
    n.start()
    return n


@pytest.fixture
def timing():
    """timing(text): a line printed in the session summary."""
    return _timings.append


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    m = getattr(item, "_qf_manager", None)
    if m is None or not rep.failed:
        return
    for n in m.nodes:
        rep.sections.append((f"quorafs log: {n.name} ({n.log_path})",
                             n.log_tail(60)))


def pytest_terminal_summary(terminalreporter):
    if _timings:
        terminalreporter.section("quorafs timings")
        for line in _timings:
            terminalreporter.write_line(line)
