#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs the unit
# tests and the integration tests (through real mounts), and ends with one
# line "N passed, N failed" summing both.  Exit status 0 only if all pass.
#   QF_TEST_ARGS   extra pytest arguments (e.g. "-k crash")
set -uo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh || { echo "installing dependencies failed"; exit 1; }
tools/build.sh || { echo "build failed"; exit 1; }

# A wedged FUSE connection can only be aborted through fusectl.
if ! mountpoint -q /sys/fs/fuse/connections 2>/dev/null; then
	mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit tests"
unit_pass=0
unit_fail=0
for t in build/tests/test_*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	out=$("$t" 2>&1)
	echo "$out" | grep -v '^ok ' || true
	line=$(echo "$out" | tail -n 1)
	if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		unit_pass=$((unit_pass + BASH_REMATCH[1]))
		unit_fail=$((unit_fail + BASH_REMATCH[2]))
	else
		echo "$t: did not finish"
		unit_fail=$((unit_fail + 1))
	fi
done
# Layering: private headers stay private (style.md).
if tools/check-headers.sh; then
	unit_pass=$((unit_pass + 1))
else
	echo "FAIL check-headers"
	unit_fail=$((unit_fail + 1))
fi
# Each fuzz harness's seed corpus runs as one ordinary test.
for f in entry wire; do
	if "build/tests/fuzz_${f}_corpus" "tests/fuzz/corpus/$f"; then
		unit_pass=$((unit_pass + 1))
	else
		echo "FAIL fuzz_${f}_corpus"
		unit_fail=$((unit_fail + 1))
	fi
done
# A short libFuzzer run of each decoder under ASan and UBSan (30 s each),
# counted as one test per harness.
for f in entry wire; do
	case $f in
	entry) srcs="engine/entry.c engine/txn.c" ;;
	wire) srcs="net/codec.c net/codec_request.c net/codec_response.c" ;;
	esac
	fz=$(mktemp -d)
	# shellcheck disable=SC2086
	if clang -std=c11 -D_GNU_SOURCE -g -O1 -I. \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		"tests/fuzz/fuzz_$f.c" $srcs engine/lib/lib.c -o "$fz/fuzz" &&
	   (cd "$fz" && ./fuzz -max_total_time=30 -max_len=8192 \
		-print_final_stats=0 "$fz" "$OLDPWD/tests/fuzz/corpus/$f" \
		>"$fz/log" 2>&1); then
		echo "fuzz $f: clean for 30 s"
		unit_pass=$((unit_pass + 1))
	else
		tail -n 30 "$fz/log" 2>/dev/null
		echo "FAIL fuzz $f"
		unit_fail=$((unit_fail + 1))
	fi
	rm -rf "$fz"
done
echo "unit: $unit_pass passed, $unit_fail failed"

echo "== integration tests"
# shellcheck disable=SC2086
/usr/bin/python3 -m pytest -q -rfE -p no:cacheprovider tests/integration ${QF_TEST_ARGS:-} 2>&1 | tee "$log"
summary=$(grep -E '[0-9]+ (passed|failed|errors?).* in [0-9.]+s' "$log" | tail -n 1)
it_pass=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
it_fail=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
it_err=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+' || echo 0)
if [ -z "$summary" ]; then
	it_fail=1 # pytest did not run to its summary
fi
# The same integration tests against an AddressSanitizer + UBSan build of
# the daemon (leak checks at each clean exit), counted as one check that
# fails on a failed test or on any sanitizer report.  QF_NO_ASAN=1 skips.
asan_pass=0
asan_fail=0
if [ "${QF_NO_ASAN:-0}" != 1 ]; then
	echo "== integration tests, daemon built with ASan and UBSan"
	if [ ! -f build-asan/build.ninja ]; then
		meson setup build-asan -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null
	fi
	reports=$(mktemp -d)
	if ninja -C build-asan quorafs >/dev/null &&
	   QUORAFS_BIN="$PWD/build-asan/quorafs" \
	   ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan" \
	   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan" \
	   /usr/bin/python3 -m pytest -q -p no:cacheprovider -k "not large" \
		tests/integration >"$log.asan" 2>&1 &&
	   [ -z "$(ls -A "$reports")" ]; then
		tail -n 1 "$log.asan"
		asan_pass=1
	else
		tail -n 30 "$log.asan"
		cat "$reports"/* 2>/dev/null | head -n 60
		echo "FAIL sanitizer run"
		asan_fail=1
	fi
	rm -rf "$reports" "$log.asan"
fi

pass=$((unit_pass + ${it_pass:-0} + asan_pass))
fail=$((unit_fail + ${it_fail:-0} + ${it_err:-0} + asan_fail))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
