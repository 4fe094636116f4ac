#!/usr/bin/env bash
# Replay every capture of the project (pcaps/) and of ../shared/pcaps, each file
# alone, and write its session records to OUT/<path>.jsonl (and how replay
# exited, when not 0). Two snapshots taken before and after a change that must
# not change behaviour should be identical: diff -r BEFORE AFTER.
#
#   scripts/records-snapshot.sh OUT [ECHOLOC_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: records-snapshot.sh OUT [ECHOLOC_BINARY]}
bin=${2:-target/release/echoloc}
mkdir -p "$out"
count=0
while IFS= read -r -d '' f; do
    dest="$out/${f//..\//up/}.jsonl"
    mkdir -p "$(dirname "$dest")"
    rc=0
    "$bin" replay --format json --no-progress "$f" >"$dest" 2>/dev/null || rc=$?
    [ "$rc" = 0 ] || echo "exit $rc" >>"$dest"
    count=$((count + 1))
done < <(find pcaps ../shared/pcaps -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' -o -name '*.pcap[0-9]*' \) -print0 2>/dev/null | sort -z)
echo "$count captures, $(find "$out" -name "*.jsonl" -exec cat {} + | wc -l) lines" >&2
