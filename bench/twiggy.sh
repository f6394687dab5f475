#!/usr/bin/env bash
# What takes the space in the worker's wasm: its sections, then the largest
# functions and data by name (twiggy top).
#
#   bench/twiggy.sh            # the shipped build/index_bg.wasm, rebuilt first with scripts/build
#   bench/twiggy.sh -n 50      # more rows
#   bench/twiggy.sh --raw      # cargo's output, before wasm-bindgen and wasm-opt
#   bench/twiggy.sh --no-build # analyse build/ as it is
#
# worker-build 0.8.7 runs `wasm-opt -O --debuginfo`, so the shipped file
# keeps its `name` section and twiggy sees real function names there (the
# section itself is listed in the output: it is part of the upload). If a
# future worker-build strips it, this script falls back to cargo's output
# (`cargo build --lib --release --target wasm32-unknown-unknown`, exactly
# the build worker-build runs, so nothing is recompiled), whose sizes are
# before wasm-bindgen and wasm-opt. twiggy is installed with
# `cargo install twiggy --locked` when missing (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."

rows=25
raw=0
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    -n) rows="$2"; shift 2 ;;
    --raw) raw=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

say() { printf '[twiggy] %s\n' "$*" >&2; }
export PATH="$PWD/node_modules/.bin:$PATH"

if ! command -v twiggy >/dev/null; then
  say "installing twiggy (cargo install twiggy --locked; a few minutes, once)"
  cargo install twiggy --locked
fi

target_dir="${CARGO_TARGET_DIR:-target}"
cargo_wasm="$target_dir/wasm32-unknown-unknown/release/wx_edge.wasm"

if [ "$build" = 1 ]; then
  if [ "$raw" = 1 ]; then
    cargo build --lib --release --locked --target wasm32-unknown-unknown
  else
    scripts/build >/dev/null
  fi
fi

wasm=build/index_bg.wasm
if [ "$raw" = 1 ]; then
  wasm="$cargo_wasm"
elif ! node bench/wasm-sections.mjs "$wasm" --has-names; then
  say "$wasm has no name section (stripped by wasm-opt); using cargo's output instead"
  [ "$build" = 1 ] && cargo build --lib --release --locked --target wasm32-unknown-unknown
  wasm="$cargo_wasm"
fi

node bench/wasm-sections.mjs "$wasm"
echo
twiggy top -n "$rows" "$wasm"
