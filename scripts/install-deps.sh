#!/bin/sh
# Installs what allocprof needs on Debian 12 and builds nothing: the build and BPF toolchain,
# and with --test also what the tests use (other allocators, a C++ compiler, the standalone
# pprof, man to render the man page, chromium and xmllint to check the flame graphs' SVG). Not
# systemd: tests/test_install.py verifies the units with systemd-analyze where the machine has
# it (an init system is not a test tool). Installs only what is missing, so a machine that has
# everything runs no apt at all.
# Usage: scripts/install-deps.sh [--test]
set -eu

# python3: scripts/gen-man.py makes the man page from the --help texts.
build_pkgs="make gcc clang llvm bpftool libbpf-dev libelf-dev libdw-dev zlib1g-dev
	libprotobuf-c-dev protobuf-c-compiler pkg-config binutils python3"
test_pkgs="python3 g++ libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 redis-server redis-tools golang-go
	golang-github-google-pprof-dev golang-github-ianlancetaylor-demangle-dev
	golang-github-chzyer-readline-dev man-db groff-base chromium libxml2-utils"

pkgs=$build_pkgs
[ "${1:-}" = "--test" ] && pkgs="$pkgs $test_pkgs"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing Debian packages:$missing; run as root or install them" >&2
		exit 1
	fi
	echo "install-deps: installing$missing" >&2
	apt-get update -qq >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
		>/dev/null
fi

if [ "${1:-}" = "--test" ]; then
	"$(dirname "$0")/install-pprof.sh"
fi
