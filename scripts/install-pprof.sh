#!/bin/sh
# Builds the standalone pprof (github.com/google/pprof) from Debian 12's Go packages, offline,
# so the tests can read every profile with an independent reader. The Go sources come from
# golang-github-google-pprof-dev and friends, which scripts/install-deps.sh --test installs.
# Usage: scripts/install-pprof.sh [DEST]   (default /usr/local/bin/pprof)
set -eu
dest=${1:-/usr/local/bin/pprof}
[ -x "$dest" ] && exit 0
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$cache" GOFLAGS= \
	go build -o "$dest" github.com/google/pprof
echo "install-pprof: pprof built at $dest" >&2
