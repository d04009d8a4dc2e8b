#!/usr/bin/env bash
# Runs every fuzz target for the given time each (default 30s; CI uses a
# few seconds). New crashers land in the package's testdata/fuzz/ and then
# run as ordinary test cases.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in \
	./resilience:FuzzParseRetryAfter \
	./resilience:FuzzParseStatusSet \
	./resilience:FuzzParseQuota \
	./resilience/store:FuzzDecodeRecord \
	./resilience:FuzzDecodeStale \
	./fetch:FuzzParseHeader \
	./fetch:FuzzParseURL \
	./fetch:FuzzStreamedData \
	./report:FuzzHostileText; do
	pkg=${target%%:*}
	name=${target##*:}
	echo "  $name ($t)"
	go test "$pkg" -run "^$name\$" -fuzz "^$name\$" -fuzztime "$t" >"$log" 2>&1 || {
		cat "$log"; exit 1
	}
done
