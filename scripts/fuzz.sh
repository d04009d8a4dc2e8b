#!/usr/bin/env bash
# Runs every fuzz target for the given budget each: a time (default 30s) or
# a count of inputs (10000x). CI gives a count: with a time, Go 1.26's fuzz
# coordinator can fail a healthy target with a bare "context deadline
# exceeded" when a loaded machine's worker answers late at the deadline
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
# New crashers land in the package's testdata/fuzz/ and then run as
# ordinary test cases.
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
