#!/bin/sh
# `make demo`: records the bundled demo program and shows what allocprof found.
set -eu
cd "$(dirname "$0")/.."
out=build/demo.pb.gz
svg=build/demo.svg
echo "demo: recording build/tests/demo (a toy key-value server) with allocprof..." >&2
./allocprof record --ops handle_request -o "$out" --svg "$svg" -- build/tests/demo
echo >&2
echo "demo: what it still held when it exited (its cache), by bytes:" >&2
./allocprof top "$out" --sample-index inuse_space -n 5 >&2
echo >&2
echo "demo: allocations per request (--ops handle_request counted its calls):" >&2
./allocprof top "$out" --per-op -n 8 >&2
cat >&2 <<MSG

demo: the profile is $(pwd)/$out
demo: its flame graph is $(pwd)/$svg (open it in a browser: hover, click to zoom, Ctrl-F)
  ./allocprof top $out                        top allocation sites by bytes
  ./allocprof top $out --sample-index alloc_objects   by number of allocations
  ./allocprof top $out --sample-index inuse_space     by bytes still allocated
  ./allocprof top $out --per-op               per request (README "Allocation budgets in CI")
  ./allocprof flame $out -o demo.svg          the flame graph (--base OLD.pb.gz: what changed)
  pprof -top $out   or   pprof -http=: $out   (scripts/install-deps.sh --test builds pprof)
MSG
