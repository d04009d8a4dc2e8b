#!/usr/bin/env bash
# Installs goreleaser v2.15.1 (not a module dependency: ~4-8 minutes and
# 1.5 GB the first time) and checks the release config with a snapshot
# build of every target, archives and checksums included. Not part of
# .ci/run, which cross-compiles every target with plain go build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
gobin=$(go env GOPATH)/bin
if ! "$gobin/goreleaser" --version 2>/dev/null | grep -q 'v2.15.1'; then
	go install github.com/goreleaser/goreleaser/v2@v2.15.1
fi
"$gobin/goreleaser" check
"$gobin/goreleaser" release --snapshot --clean --skip=publish
ls dist/*.tar.gz dist/*.zip dist/checksums.txt
