#!/usr/bin/env bash
# Benchmark: the `customers` transform as a wasm component next to the same Rust crate called
# natively, in one run (tests/transform-bench). Builds the component first.
#   usage: deploy/bench-transform.sh [changes]      (default 20000)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
out="$REPO/target/bench-transforms"
"$REPO/deploy/build-transforms.sh" "$out" customers >&2
# The shared target dir reuses the host's compiled dependencies.
CARGO_TARGET_DIR="$REPO/target" cargo run --quiet --release \
  --manifest-path "$REPO/tests/transform-bench/Cargo.toml" -- "$out" "${1:-20000}"
