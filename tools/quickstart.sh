#!/usr/bin/env bash
# Quick start: install what is missing, build, and start one quorafs node in
# the background with its data dir and mount under the working directory.
#   tools/quickstart.sh          start (./quorafs-data, ./mnt, log in ./quorafs.log)
#   tools/quickstart.sh stop     stop it and unmount
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
data="$PWD/quorafs-data"
mnt="$PWD/mnt"
log="$PWD/quorafs.log"
pidfile="$data.pid"

if [ "${1:-}" = "stop" ]; then
	if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
		for _ in $(seq 50); do
			kill -0 "$(cat "$pidfile")" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$pidfile"
	mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
	echo "stopped"
	exit 0
fi

"$src/tools/install-deps.sh"
"$src/tools/build.sh"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	echo "quorafs is already running (pid $(cat "$pidfile")); stop it with: $0 stop"
	exit 0
fi
# A daemon that died leaves a stale mount behind.
if ! stat "$mnt" >/dev/null 2>&1 && [ -e "$mnt" ] || mountpoint -q "$mnt" 2>/dev/null; then
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
fi
"$src/build/quorafs" mount --data-dir "$data" --mount "$mnt" --id 1 \
	--address 127.0.0.1:9001 --bootstrap >"$log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 100); do
	grep -q "ready:" "$log" && break
	kill -0 "$(cat "$pidfile")" 2>/dev/null || { cat "$log"; exit 1; }
	sleep 0.1
done
grep -q "ready:" "$log" || { cat "$log"; echo "quorafs did not start"; exit 1; }
cat <<MSG
quorafs is running (pid $(cat "$pidfile"), log: $log).
Databases live at $mnt. Use them like any SQLite file:

  sqlite3 $mnt/app.db 'PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES(1)'
  python3 -c 'import sqlite3; print(sqlite3.connect("$mnt/app.db").execute("select * from t").fetchall())'

Every commit returns once Raft holds it durably. Stop with: $0 stop
MSG
