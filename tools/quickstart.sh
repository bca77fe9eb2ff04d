#!/usr/bin/env bash
# Quick start: install what is missing, build, and start a local 3-node
# quorafs cluster on loopback in the background, with data dirs, mounts
# and logs under the working directory.
#   tools/quickstart.sh          start (./quorafs/node{1,2,3}/{data,mnt,log})
#   tools/quickstart.sh stop     stop the nodes and unmount
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
top="$PWD/quorafs"
ports=(9001 9002 9003)

node_dir() { echo "$top/node$1"; }

stop_node() {
	local d pid
	d=$(node_dir "$1")
	if [ -f "$d/pid" ]; then
		pid=$(cat "$d/pid")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
		rm -f "$d/pid"
	fi
	if mountpoint -q "$d/mnt" 2>/dev/null || { [ -e "$d/mnt" ] && ! stat "$d/mnt" >/dev/null 2>&1; }; then
		fusermount3 -u "$d/mnt" 2>/dev/null || umount -l "$d/mnt" 2>/dev/null || true
	fi
}

if [ "${1:-}" = "stop" ]; then
	# Followers first: the leader then needs no failover.
	for i in 3 2 1; do stop_node "$i"; done
	echo "stopped"
	exit 0
fi

"$src/tools/install-deps.sh"
"$src/tools/build.sh"

# Start node $1 in the background; $d/offset remembers where its new log
# lines begin.
start_node() {
	local i=$1 d extra=()
	d=$(node_dir "$i")
	if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
		echo "node $i is already running (pid $(cat "$d/pid"))"
		echo -1 >"$d/offset"
		return 0
	fi
	stop_node "$i" # a stale mount of a daemon that died
	mkdir -p "$d"
	if [ ! -e "$d/data/node" ]; then # a new node: form or join
		if [ "$i" = 1 ]; then extra=(--bootstrap); else extra=(--join "127.0.0.1:${ports[0]}"); fi
	fi
	touch "$d/log"
	stat -c %s "$d/log" >"$d/offset"
	"$src/build/quorafs" mount --data-dir "$d/data" --mount "$d/mnt" \
		--id "$i" --address "127.0.0.1:${ports[$((i - 1))]}" "${extra[@]}" \
		>>"$d/log" 2>&1 &
	echo $! >"$d/pid"
}

wait_node() {
	local i=$1 d off
	d=$(node_dir "$i")
	off=$(cat "$d/offset")
	[ "$off" = -1 ] && return 0
	for _ in $(seq 600); do
		tail -c +"$((off + 1))" "$d/log" | grep -q "ready:" && return 0
		kill -0 "$(cat "$d/pid")" 2>/dev/null || { tail -n 20 "$d/log"; exit 1; }
		sleep 0.1
	done
	tail -n 20 "$d/log"
	echo "node $i did not start"
	exit 1
}

# A new cluster: node 1 forms it before the others join.  A restart: all
# at once, since none is ready before a majority is up.
start_node 1
[ -e "$(node_dir 2)/data/node" ] || wait_node 1
start_node 2
start_node 3
for i in 1 2 3; do wait_node "$i"; done
"$src/build/quorafs" cluster -s 127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003 list
n1=$(node_dir 1)/mnt n2=$(node_dir 2)/mnt n3=$(node_dir 3)/mnt
cat <<MSG

A 3-node quorafs cluster is running (logs: $top/node*/log).
Each node mounts the same databases; write on the leader's mount (node 1
above, unless leadership moved), read on any:

  sqlite3 $n1/app.db 'PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES(1)'
  sqlite3 $n2/app.db 'SELECT * FROM t'
  sqlite3 $n3/app.db 'SELECT * FROM t'

Every commit returns once two of the three nodes hold it durably.  Over
the dqlite wire protocol (Debian's go-dqlite shell, or ours):

  dqlite -s 127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003 app.db 'SELECT * FROM t'
  $src/build/quorafs shell -s 127.0.0.1:9001 app.db

Stop with: $0 stop   (a later start resumes the same cluster)
MSG
