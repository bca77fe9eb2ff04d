"""4 writer and 4 reader processes on one WAL database for 20 s: exact final
counts, readers always see a consistent sum, integrity_check ok."""
import json
import subprocess

import pytest

from qflib import HELPERS, PYTHON, cli, integrity

SECONDS = 20
WRITERS = 4
READERS = 4
ACCOUNTS = 100
START = 1000
TOTAL = ACCOUNTS * START
BANK = HELPERS / "bank.py"


def results(procs, what):
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=SECONDS + 90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"a {what} process did not finish")
        assert p.returncode == 0, f"{what} failed: {stderr}"
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.mark.deadline(200)
def test_bank_writers_and_readers(qf, node):
    db = node.path("bank.db")
    setup = subprocess.run([PYTHON, BANK, "setup", db, str(ACCOUNTS),
                            str(START)], capture_output=True, text=True,
                           timeout=60)
    assert setup.returncode == 0, setup.stderr

    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers = [qf.spawn([PYTHON, BANK, "writer", db, SECONDS, w, 1000 + w],
                        **kw) for w in range(WRITERS)]
    readers = [qf.spawn([PYTHON, BANK, "reader", db, SECONDS, ACCOUNTS,
                         TOTAL], **kw) for _ in range(READERS)]
    w = results(writers, "writer")
    r = results(readers, "reader")

    for x in w:
        assert x["errors"] == [], f"writer {x['writer']} errors: {x['errors']}"
        assert x["txns"] >= 20, f"writer {x['writer']} barely ran: {x}"
    for x in r:
        assert x["errors"] == [], f"reader errors: {x['errors']}"
        assert x["n_bad"] == 0, f"inconsistent reads: {x['bad']}"
        assert x["reads"] >= 20 and x["full_checks"] >= 2, \
            f"reader barely ran: {x}"

    txns = sum(x["txns"] for x in w)
    rows = sum(x["rows"] for x in w)
    print(f"{txns} transactions, {rows} log rows, "
          f"{sum(x['reads'] for x in r)} reads; longest wait for the write "
          f"lock {max(x['max_wait'] for x in w):.2f} s")

    def check():
        got = cli(db, "SELECT count(*), sum(src IS NOT NULL) FROM log;\n"
                      "SELECT sum(balance), count(*) FROM accounts;\n")
        assert got.split() == [f"{rows}|{txns}", f"{TOTAL}|{ACCOUNTS}"]
        per_writer = cli(db, "SELECT writer, count(*) FROM log "
                             "GROUP BY writer ORDER BY writer;").split()
        assert per_writer == [f"{x['writer']}|{x['rows']}" for x in w]
        mism = cli(db, "SELECT count(*) FROM accounts a WHERE a.balance != "
                       f"{START} - (SELECT coalesce(sum(amount), 0) FROM log "
                       "WHERE src = a.id) + (SELECT coalesce(sum(amount), 0) "
                       "FROM log WHERE dst = a.id);").strip()
        assert mism == "0", "balances disagree with the transfer log"
        assert integrity(db) == "ok"

    check()
    node.restart()
    check()
