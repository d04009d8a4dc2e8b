#!/usr/bin/env bash
# Builds refetch for every release target (the same matrix as
# .goreleaser.yaml), so a platform-specific break (file locking on Windows,
# say) fails CI rather than a release.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for os in linux darwin windows; do
	for arch in amd64 arm64; do
		echo "  $os/$arch"
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -o "$out/refetch-$os-$arch" .
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch go vet ./...
	done
done
