#!/usr/bin/env bash
# Builds the snapshot release exactly as a tagged release would be built
# (every target, archives, .deb and .rpm, checksums) and checks what users
# install:
#   - the archives hold the binary, README.md, LICENSE, man/man1/*.1.gz and
#     completions/; checksums.txt matches every file;
#   - the host's .deb, unpacked with dpkg-deb -x: its /usr/bin/refetch runs
#     and reports the snapshot version, every man page renders with man -l
#     without a warning, and each completion file is where its shell looks:
#     bash-completion loads it on demand and completes "refetch fe", zsh's
#     compinit finds it in its default fpath, fish finds it in its
#     vendor_completions.d and completes "refetch fe";
#   - the host's .rpm: metadata and file list with rpm -qip/-qlp (Debian's
#     rpm package; chosen over bsdtar because it reads the header: licence,
#     URL, vendor), unpacked with rpm2archive and tar, its binary run. Not
#     rpm2cpio | cpio: nfpm's payload names are absolute (/usr/bin/refetch),
#     so cpio would write into the real /usr, and rpm2cpio exits 1 on nfpm's
#     payload size (google/rpmpack#60).
# The shells run with HOME and XDG dirs in a temp dir: fish would otherwise
# create its config and data dirs in the real home.
# Needs Debian or Ubuntu (amd64 or arm64): installs goreleaser v2.15.1 with
# go install when missing (~8 minutes and 1.5 GB the first time; not a
# module dependency, not part of .ci/run) and, through apt-get, man-db,
# rpm, unzip, bash-completion, zsh and fish when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'release-check: %s\n' "$*" >&2; exit 1; }

gobin=$(go env GOPATH)/bin
if ! "$gobin/goreleaser" --version 2>/dev/null | grep -q 'v2.15.1'; then
	step "installing goreleaser v2.15.1"
	go install github.com/goreleaser/goreleaser/v2@v2.15.1
fi

# need PACKAGE TEST...: apt-get installs PACKAGE unless TEST succeeds.
need() {
	local pkg=$1 sudo=()
	shift
	"$@" >/dev/null 2>&1 && return
	step "installing $pkg"
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "$pkg" >/dev/null ||
		{ "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q --no-install-recommends "$pkg" >/dev/null; }
}
need man-db command -v man
need rpm command -v rpm2archive
need unzip command -v unzip
need zsh command -v zsh
need fish command -v fish
need bash-completion test -r /usr/share/bash-completion/bash_completion

step "goreleaser check"
"$gobin/goreleaser" check

step "goreleaser release --snapshot"
"$gobin/goreleaser" release --snapshot --clean --skip=publish

arch=$(dpkg --print-architecture)
case $arch in
amd64) rpmarch=x86_64 ;;
arm64) rpmarch=aarch64 ;;
*) fail "no release target for this host ($arch)" ;;
esac
version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' dist/metadata.json)
[ -n "$version" ] || fail "no version in dist/metadata.json"
pages=$(cd dist-docs/man && ls -- *.1.gz)
[ "$(echo "$pages" | wc -l)" -ge 9 ] || fail "only $(echo "$pages" | wc -l) man pages in dist-docs/man"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "archives and checksums.txt"
(cd dist && sha256sum --check --strict --quiet checksums.txt)
for a in dist/*.tar.gz dist/*.zip; do
	case $a in
	*.zip) list=$(unzip -Z1 "$a") ;;
	*) list=$(tar -tzf "$a") ;;
	esac
	for f in README.md LICENSE completions/refetch.bash completions/_refetch completions/refetch.fish $(printf 'man/man1/%s ' $pages); do
		grep -qx -- "$f" <<<"$list" || fail "$a lacks $f"
	done
	grep -qxE 'refetch(\.exe)?' <<<"$list" || fail "$a lacks the binary"
	echo "ok  $a ($(wc -l <<<"$list") files)"
done

deb=$(ls dist/*_"$arch".deb)
rpmfile=$(ls dist/*."$rpmarch".rpm)
root=$tmp/deb

step "$deb: control"
dpkg-deb --field "$deb" Package Version Architecture Maintainer Homepage Section
step "$deb: files"
dpkg-deb --contents "$deb" | awk '{print $1, $6}'
dpkg-deb -x "$deb" "$root"

step "$deb: /usr/bin/refetch version"
out=$("$root/usr/bin/refetch" version)
echo "$out"
[[ $out == "refetch $version "* ]] || fail "the packaged binary reports \"$out\", want version $version"
for p in $pages; do
	cmp -s "dist-docs/man/$p" "$root/usr/share/man/man1/$p" || fail "$deb: /usr/share/man/man1/$p missing or differs from dist-docs"
	warnings=$(MANWIDTH=80 man --warnings -l "$root/usr/share/man/man1/$p" 2>&1 >/dev/null)
	[ -z "$warnings" ] || fail "man -l $p: $warnings"
done
for p in refetch.1.gz refetch-fetch.1.gz; do
	step "man -l /usr/share/man/man1/$p (first lines)"
	page=$(MANWIDTH=80 man -l "$root/usr/share/man/man1/$p")
	head -n 12 <<<"$page"
	grep -q '^EXIT STATUS' <<<"$page" && grep -q '^ENVIRONMENT' <<<"$page" || fail "$p lacks EXIT STATUS or ENVIRONMENT"
done

step "completions are where the shells look"
export PATH="$root/usr/bin:$PATH"
export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config XDG_DATA_HOME=$tmp/home/.local/share XDG_CACHE_HOME=$tmp/home/.cache
mkdir -p "$HOME"
# bash-completion loads a command's completion on first use from
# $XDG_DATA_DIRS/bash-completion/completions/NAME (and /usr/share's).
got=$(XDG_DATA_DIRS=$root/usr/share bash --norc --noprofile -c '
	source /usr/share/bash-completion/bash_completion
	__load_completion refetch || exit 1
	COMP_WORDS=(refetch fe); COMP_CWORD=1; COMP_LINE="refetch fe"; COMP_POINT=${#COMP_LINE}
	$(complete -p refetch | sed "s/.*-F \([^ ]*\) .*/\1/") refetch fe refetch
	printf "%s\n" "${COMPREPLY[@]}"' 2>/dev/null) # compopt complains outside a real completion
[ "$got" = fetch ] || fail "bash: refetch fe completes to \"$got\""
echo "bash: /usr/share/bash-completion/completions/refetch loaded by bash-completion; refetch fe<TAB> -> $got"
zdir=/usr/share/zsh/vendor-completions
zsh -fc 'print -rl -- $fpath' | grep -qx "$zdir" || fail "zsh does not look in $zdir"
got=$(zsh -fc "fpath=($root$zdir \$fpath); autoload -Uz compinit; compinit -u -D; print -r -- \$_comps[refetch]")
[ "$got" = _refetch ] || fail "zsh: compinit maps refetch to \"$got\""
echo "zsh: $zdir/_refetch is in zsh's default fpath; compinit maps refetch -> $got"
fdir=/usr/share/fish/vendor_completions.d
fish -c 'printf "%s\n" $fish_complete_path' | grep -qx "$fdir" || fail "fish does not look in $fdir"
got=$(fish -c "set fish_complete_path (string replace -- $fdir $root$fdir \$fish_complete_path); complete -C 'refetch fe'" | cut -f1)
[ "$got" = fetch ] || fail "fish: refetch fe completes to \"$got\""
echo "fish: $fdir/refetch.fish is in fish_complete_path; refetch fe<TAB> -> $got"

step "$rpmfile: header"
rpm -qip --nosignature "$rpmfile" | grep -E '^(Name|Version|Release|Architecture|License|Vendor|URL|Summary) '
step "$rpmfile: files"
rpm -qlp --nosignature "$rpmfile"
want="/usr/bin/refetch
$(printf '/usr/share/man/man1/%s\n' $pages)
/usr/share/bash-completion/completions/refetch
/usr/share/zsh/site-functions/_refetch
/usr/share/fish/vendor_completions.d/refetch.fish
/usr/share/doc/refetch/README.md
/usr/share/licenses/refetch/LICENSE"
missing=$(comm -23 <(sort <<<"$want") <(rpm -qlp --nosignature "$rpmfile" | sort))
[ -z "$missing" ] || fail "$rpmfile lacks: $missing"
mkdir "$tmp/rpm"
rpm2archive - <"$rpmfile" | tar -xzf - -C "$tmp/rpm"
for p in $pages; do
	cmp -s "dist-docs/man/$p" "$tmp/rpm/usr/share/man/man1/$p" || fail "$rpmfile: /usr/share/man/man1/$p differs from dist-docs"
done
out=$("$tmp/rpm/usr/bin/refetch" version)
[[ $out == "refetch $version "* ]] || fail "the rpm's binary reports \"$out\""
echo "rpm2archive: /usr/bin/refetch version -> $out"

step "release check passed: $version"
