#!/usr/bin/env bash
# What takes the space in the worker's wasm: the shipped file's sections,
# then the largest functions and data by name (twiggy top).
#
#   bench/twiggy.sh            # build/index_bg.wasm (rebuilt first with scripts/build) and the names build
#   bench/twiggy.sh -n 50      # more rows
#   bench/twiggy.sh --no-build # analyse what is built as it is
#
# The shipped wasm has no function names (the release profile strips them
# and wasm-opt -Oz drops what is left), so the names come from the `names`
# profile (`cargo build --profile names --target wasm32-unknown-unknown`:
# the release build with names; sizes are cargo's, before wasm-bindgen and
# wasm-opt, which shrink the total by about a fifth). twiggy is installed
# with `cargo install twiggy --locked` when missing (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."

rows=25
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    -n) rows="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
names_wasm="$target_dir/wasm32-unknown-unknown/names/wx_edge.wasm"

if [ "$build" = 1 ]; then
  scripts/build >/dev/null
  cargo build --lib --profile names --locked --target wasm32-unknown-unknown
fi
if [ ! -f "$names_wasm" ]; then
  say "$names_wasm is missing: run without --no-build"
  exit 1
fi

node bench/wasm-sections.mjs build/index_bg.wasm
echo
say "largest items of the names build ($names_wasm; before wasm-bindgen and wasm-opt)"
twiggy top -n "$rows" "$names_wasm"
