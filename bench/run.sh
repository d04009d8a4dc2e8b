#!/usr/bin/env bash
# Measures refetch against curl on this machine: builds refetch as released
# (static, stripped), then runs bench/harness, which serves everything on
# loopback and alternates the tools run by run. Needs curl; prints Markdown.
# The body-size rows are also measured against nginx serving the same
# files (bench/nginx.sh: installed with apt-get when missing, started on a
# free loopback port with its own config in a temp dir, stopped at the end);
# NGINX=0 skips it. The batch section runs an nginx of its own.
#   bash bench/run.sh            # everything (~7 minutes on 2 cores)
#   bash bench/run.sh -only small,wait -runs 100
#   bash bench/run.sh -only big -servers nginx -big-runs 11
#   bash bench/run.sh -only batch -batch-runs 9    # refetch -P 8 -i vs curl --parallel vs xargs
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/nginx.sh
out=$(mktemp -d)
trap 'nginx_stop "$out/nginx"; rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/refetch" .
go build -o "$out/harness" ./bench/harness
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(go version | cut -d' ' -f3)"
servers=()
if [ "${NGINX:-1}" != 0 ]; then
	"$out/harness" -mkfiles "$out/files" "$@"
	port=$(nginx_start "$out/nginx" "$out/files")
	echo "nginx: $(nginx -v 2>&1 | cut -d/ -f2) on 127.0.0.1:$port, sendfile on"
	servers=(-files "$out/files" -nginx "http://127.0.0.1:$port")
fi
"$out/harness" -refetch "$out/refetch" -curl "$(command -v curl)" "${servers[@]}" "$@"
