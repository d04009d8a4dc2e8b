#!/usr/bin/env bash
# Measures refetch against curl on this machine: builds refetch as released
# (static, stripped), then runs bench/harness, which serves everything on
# loopback and alternates the tools run by run. Needs curl, and nginx for
# the batch section (apt-get install nginx-light); prints Markdown.
#   bash bench/run.sh            # everything (~4 minutes on 2 cores)
#   bash bench/run.sh -only small,wait -runs 100
#   bash bench/run.sh -only batch -batch-runs 9    # refetch -P 8 -i vs curl --parallel vs xargs
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/refetch" .
go build -o "$out/harness" ./bench/harness
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(go version | cut -d' ' -f3)"
"$out/harness" -refetch "$out/refetch" -curl "$(command -v curl)" "$@"
