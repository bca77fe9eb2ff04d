#!/usr/bin/env bash
# Install the Debian bookworm packages quorafs needs to build and test,
# skipping those already installed.  Needs root (or sudo).
# libedit-dev: line editing and history in 'quorafs shell'.  go-dqlite: the
# reference dqlite node (dqlite-demo) and shell the compatibility tests run.
# clang, libclang-rt-14-dev: the libFuzzer runs of the test suite.
# iproute2, util-linux (nsenter): the partition tests' network namespaces.
set -euo pipefail

packages=(gcc pkg-config meson ninja-build libfuse3-dev fuse3 libuv1-dev
	  libraft-dev libsqlite3-dev sqlite3 python3 python3-pytest psmisc
	  clang libclang-rt-14-dev iproute2 util-linux
	  libedit-dev go-dqlite)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
