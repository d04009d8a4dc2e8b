#!/usr/bin/env bash
# Resume inside the retries (issue 24), measured: toxiproxy v2.5.0 in front
# of nginx (bench/nginx.sh), limiting to 4 MB/s and resetting every
# connection 1.5 s into its answer (limit_data 6,000,000 bytes, turned into
# a reset by a reset_peer of toxicity 0: see e2e/e2e_resume_test.go), one
# 16 MiB file. Runs refetch -n 6 with resuming and with --no-resume, and
# curl --retry 5 --retry-all-errors -C - when curl is installed, each with
# its default waits, RUNS times (default 3), alternating. Prints one line
# per run: tool, exit code, attempts, bytes nginx sent (its access log's
# $body_bytes_sent: toxiproxy reads ahead of what it forwards, so this
# counts bytes a reset then drops), bytes refetch received (its --json
# body_bytes), elapsed, whether the file is byte-identical.
#   TOXIPROXY_SERVER=~/go/bin/server bash bench/resume.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/nginx.sh
runs=${1:-3}
toxi=${TOXIPROXY_SERVER:-$(command -v toxiproxy-server || true)}
[ -x "$toxi" ] || { echo "resume.sh: set TOXIPROXY_SERVER to toxiproxy-server (go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0)" >&2; exit 2; }
out=$(mktemp -d)
toxipid=
trap '[ -z "$toxipid" ] || kill "$toxipid" 2>/dev/null; nginx_stop "$out/nginx"; rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/refetch" .
mkdir -p "$out/files"
head -c $((16 << 20)) /dev/urandom >"$out/files/file.bin"
want=$(sha256sum <"$out/files/file.bin" | cut -d' ' -f1)
port=$(nginx_start "$out/nginx" "$out/files")
api_port=$(nginx_free_port)
"$toxi" -host 127.0.0.1 -port "$api_port" >"$out/toxiproxy.log" 2>&1 &
toxipid=$!
api=http://127.0.0.1:$api_port
for _ in $(seq 100); do curl -fsS "$api/version" >/dev/null 2>&1 && break; sleep 0.05; done
proxy_port=$(nginx_free_port)
curl -fsS "$api/proxies" -d "{\"name\":\"nginx\",\"listen\":\"127.0.0.1:$proxy_port\",\"upstream\":\"127.0.0.1:$port\",\"enabled\":true}" >/dev/null
curl -fsS "$api/proxies/nginx/toxics" -d '{"name":"slow","type":"bandwidth","stream":"downstream","toxicity":1,"attributes":{"rate":4000}}' >/dev/null
curl -fsS "$api/proxies/nginx/toxics" -d '{"name":"cut","type":"limit_data","stream":"downstream","toxicity":1,"attributes":{"bytes":6000000}}' >/dev/null
curl -fsS "$api/proxies/nginx/toxics" -d '{"name":"reset","type":"reset_peer","stream":"downstream","toxicity":0,"attributes":{"timeout":1500}}' >/dev/null
url=http://127.0.0.1:$proxy_port/file.bin
echo "machine: $(nproc) cores, $(uname -sr); nginx $(nginx -v 2>&1 | cut -d/ -f2); toxiproxy $("$toxi" -version 2>&1 | head -1); $(curl --version | head -1 | cut -d' ' -f1-2)"

# run TOOL ARGS...: one measured run.
run() {
	local tool=$1
	shift
	rm -f "$out/got" "$out/report"
	: >"$out/nginx/access.log"
	local t0 t1 code=0
	t0=$(date +%s.%N)
	"$@" >"$out/report" 2>"$out/stderr" || code=$?
	t1=$(date +%s.%N)
	local attempts sent got same=no
	attempts=$(awk '$7 == "/file.bin"' "$out/nginx/access.log" | wc -l)
	sent=$(awk '$7 == "/file.bin" {s += $10} END {print s + 0}' "$out/nginx/access.log")
	got=$({ grep -o '"body_bytes":[0-9]*' "$out/report" || true; } | awk -F: '{s += $2} END {printf "%.1f MiB", s / 1048576}')
	[ "$got" != "0.0 MiB" ] || got=-
	[ -f "$out/got" ] && [ "$(sha256sum <"$out/got" | cut -d' ' -f1)" = "$want" ] && same=yes
	printf '%-26s exit %3s  attempts %d  nginx sent %6.1f MiB (%.2fx)  received %9s  %5.1f s  identical %s\n' \
		"$tool" "$code" "$attempts" "$(echo "$sent / 1048576" | bc -l)" "$(echo "$sent / 16777216" | bc -l)" \
		"$got" "$(echo "$t1 - $t0" | bc -l)" "$same"
}

for i in $(seq "$runs"); do
	run "refetch -n 6" "$out/refetch" fetch --json -n 6 --breaker-failures 0 --state-dir "$out/state" -o "$out/got" "$url"
	run "refetch -n 6 --no-resume" "$out/refetch" fetch --json -n 6 --no-resume --breaker-failures 0 --state-dir "$out/state" -o "$out/got" "$url"
	if command -v curl >/dev/null; then
		run "curl --retry 5 -C -" curl -sS --retry 5 --retry-all-errors -C - -o "$out/got" "$url"
	fi
done
