"""Bank workload for the concurrency test; one process per role.

  bank.py setup  DB ACCOUNTS START
  bank.py writer DB SECONDS WRITER_ID SEED
  bank.py reader DB SECONDS ACCOUNTS TOTAL

Writers move money between accounts in transactions that also insert a row
into `log` (every 10th transaction inserts 20 extra filler rows); they count
the rows of the transactions whose COMMIT returned.  Readers check, each in
one read transaction, that the balances add up to TOTAL, and that the log
row count never goes backwards; every 10th read also checks every balance
against the transfers in the log.  Each prints one JSON line."""
import json
import random
import sqlite3
import sys
import time

# SQLite's busy handler is not fair: a writer that sleeps in it can lose the
# write lock to the others' tight loops again and again.  On a plain local
# disk this workload measured waits of up to 9 s, so 10 s made the test
# flaky on a slow machine; the printed "longest wait" shows the real figure.
BUSY_MS = 60_000


def connect(db):
    c = sqlite3.connect(db, timeout=BUSY_MS / 1000, isolation_level=None)
    c.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    return c


def setup(db, accounts, start):
    c = connect(db)
    assert c.execute("PRAGMA journal_mode = wal").fetchone()[0] == "wal"
    c.executescript(f"""
        BEGIN;
        CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
        CREATE TABLE log(id INTEGER PRIMARY KEY, writer INTEGER NOT NULL,
                         seq INTEGER NOT NULL, src INTEGER, dst INTEGER,
                         amount INTEGER NOT NULL, note TEXT);
        CREATE INDEX log_src ON log(src);
        CREATE INDEX log_dst ON log(dst);
        WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c
                                WHERE i + 1 < {accounts})
        INSERT INTO accounts SELECT i, {start} FROM c;
        COMMIT;
    """)
    c.close()
    print(json.dumps({"ok": True}))


def writer(db, seconds, wid, seed):
    rnd = random.Random(seed)
    c = connect(db)
    n_acc = c.execute("SELECT count(*) FROM accounts").fetchone()[0]
    end = time.monotonic() + seconds
    txns = rows = seq = 0
    max_wait = 0.0
    errors = []
    while time.monotonic() < end:
        seq += 1
        a, b = rnd.sample(range(n_acc), 2)
        amount = rnd.randint(1, 100)
        filler = 20 if seq % 10 == 0 else 0
        t0 = time.monotonic()
        try:
            c.execute("BEGIN IMMEDIATE")
            max_wait = max(max_wait, time.monotonic() - t0)
            c.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?",
                      (amount, a))
            c.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                      (amount, b))
            c.execute("INSERT INTO log(writer, seq, src, dst, amount) "
                      "VALUES (?, ?, ?, ?, ?)", (wid, seq, a, b, amount))
            if filler:
                c.executemany(
                    "INSERT INTO log(writer, seq, amount, note) "
                    "VALUES (?, ?, 0, ?)",
                    ((wid, seq, "x" * rnd.randint(10, 600))
                     for _ in range(filler)))
            c.execute("COMMIT")
        except sqlite3.Error as e:
            took = time.monotonic() - t0
            errors.append(f"seq {seq}: {e} (after {took:.2f} s)")
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if len(errors) > 20:
                break
            continue
        txns += 1
        rows += 1 + filler
    c.close()
    print(json.dumps({"writer": wid, "txns": txns, "rows": rows,
                      "max_wait": round(max_wait, 3), "errors": errors}))


CHECK_ALL = """
SELECT count(*) FROM accounts a
WHERE a.balance != ?
  - (SELECT coalesce(sum(amount), 0) FROM log WHERE src = a.id)
  + (SELECT coalesce(sum(amount), 0) FROM log WHERE dst = a.id)
"""


def reader(db, seconds, accounts, total):
    c = connect(db)
    start = total // accounts
    end = time.monotonic() + seconds
    reads = full_checks = 0
    last_rows = 0
    bad, errors = [], []
    while time.monotonic() < end:
        try:
            c.execute("BEGIN")
            s, n = c.execute(
                "SELECT sum(balance), count(*) FROM accounts").fetchone()
            rows = c.execute("SELECT count(*) FROM log").fetchone()[0]
            mism = None
            if reads % 10 == 0:
                mism = c.execute(CHECK_ALL, (start,)).fetchone()[0]
                full_checks += 1
            c.execute("COMMIT")
        except sqlite3.Error as e:
            errors.append(f"read {reads}: {e}")
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if len(errors) > 20:
                break
            continue
        reads += 1
        if s != total or n != accounts:
            bad.append(f"read {reads}: sum={s} accounts={n}")
        if rows < last_rows:
            bad.append(f"read {reads}: log rows went back {last_rows}->{rows}")
        if mism:
            bad.append(f"read {reads}: {mism} balances disagree with the log")
        last_rows = rows
    c.close()
    print(json.dumps({"reads": reads, "full_checks": full_checks,
                      "bad": bad[:20], "n_bad": len(bad), "errors": errors,
                      "last_rows": last_rows}))


if __name__ == "__main__":
    role, db = sys.argv[1], sys.argv[2]
    if role == "setup":
        setup(db, int(sys.argv[3]), int(sys.argv[4]))
    elif role == "writer":
        writer(db, float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif role == "reader":
        reader(db, float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(f"unknown role {role}")
