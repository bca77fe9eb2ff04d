"""Crash-test writer: commits numbered rows, one autocommit INSERT each.

  crash_writer.py DB MODE FIRST_ID ATTEMPTS_FILE ACKS_FILE

Before each INSERT it appends the id to ATTEMPTS_FILE; after the INSERT
returned (the commit was acknowledged) it appends the id to ACKS_FILE.
Both are flushed at once, so what the files hold is exactly what was
attempted and acknowledged.  Runs until an error (the daemon was killed),
then exits 3 with the error on stderr."""
import hashlib
import os
import sqlite3
import sys


def payload(i):
    h = hashlib.sha256(str(i).encode()).hexdigest()
    return (h * 40)[: 32 + (i * 53) % 2000]


def main():
    db, mode, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    attempts = open(sys.argv[4], "a", buffering=1)
    acks = open(sys.argv[5], "a", buffering=1)
    c = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        got = c.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
        if got != mode:
            sys.exit(f"journal_mode={mode} gave {got}")
        c.execute("CREATE TABLE IF NOT EXISTS r(id INTEGER PRIMARY KEY, "
                  "p TEXT NOT NULL)")
        i = first
        while True:
            attempts.write(f"{i}\n")
            attempts.flush()
            c.execute("INSERT INTO r VALUES (?, ?)", (i, payload(i)))
            acks.write(f"{i}\n")
            acks.flush()
            i += 1
    except sqlite3.Error as e:
        print(f"stopped: {e}", file=sys.stderr)
        os._exit(3)


if __name__ == "__main__":
    main()
