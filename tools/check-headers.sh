#!/usr/bin/env bash
# House rule (docs: style.md): each of fs/, engine/, net/ has one public
# header named after it; its other headers are private to the folder (unit
# tests under tests/ may include them).  Prints offending includes; exit 1
# if any.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
for dir in fs engine net; do
	public="$dir/$dir.h"
	for h in $(find "$dir" -maxdepth 1 -name '*.h' 2>/dev/null); do
		[ "$h" = "$public" ] && continue
		base=$(basename "$h")
		# Includers outside the folder (and outside tests/) are violations.
		while IFS= read -r hit; do
			file=${hit%%:*}
			case "$file" in
			"$dir"/*|tests/*) ;;
			*) echo "private header $h included by $hit"; bad=1 ;;
			esac
		done < <(grep -rn --include='*.c' --include='*.h' \
			-E "#include \"([./]*$dir/)?$base\"" fs engine net tools 2>/dev/null |
			grep -v "^$dir/")
	done
done
# engine/lib is a leaf: it includes nothing of ours.
if grep -n '#include "' engine/lib/*.c engine/lib/*.h | grep -v '"lib.h"'; then
	echo "engine/lib must depend on libc only"
	bad=1
fi
# Dependencies point one way: fs and net never include each other, and
# engine includes neither.
if grep -rn -E '#include "(\.\./)?(fs|net)/' engine; then bad=1; fi
if grep -rn -E '#include "(\.\./)?net/' fs; then bad=1; fi
if grep -rn -E '#include "(\.\./)?fs/' net 2>/dev/null; then bad=1; fi
exit $bad
