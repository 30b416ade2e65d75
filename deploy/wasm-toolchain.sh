#!/usr/bin/env bash
# Provides a Rust compiler that can build wasm32 components on a machine whose rustup has no wasm
# target and no network but the package registries: Debian's rustc-web 1.96 with its exact std
# source, unpacked (not installed) into a cache directory. Idempotent; prints the directory.
#   usage: deploy/wasm-toolchain.sh            -> prints the toolchain dir (downloads on first run)
set -euo pipefail

dir="${PONTE_WASM_TOOLCHAIN:-${XDG_CACHE_HOME:-$HOME/.cache}/ponte/wasm-toolchain}"
version="1.96"
stamp="$dir/.ready-$version"
if [[ -f "$stamp" ]]; then echo "$dir"; exit 0; fi

pkgs=(rustc-web "libstd-rust-web-dev" "libstd-rust-web-$version" rust-web-src rust-web-llvm lld-22 libllvm22)
mkdir -p "$dir/debs"
cd "$dir/debs"
if ! apt-get download "${pkgs[@]}" >&2 2>"$dir/debs/download.log"; then
  echo "wasm-toolchain: apt-get download failed; running apt-get update once and retrying" >&2
  apt-get update -qq >&2
  apt-get download "${pkgs[@]}" >&2
fi
for deb in ./*.deb; do dpkg-deb -x "$deb" "$dir"; done
rustc="$dir/usr/bin/rustc"
[[ -x "$rustc" ]] || { echo "wasm-toolchain: $rustc missing after unpack" >&2; exit 1; }
LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu" "$rustc" --version >&2
[[ -d "$dir/usr/lib/rustlib/src/rust/library" ]] || { echo "wasm-toolchain: std source missing" >&2; exit 1; }
ls "$dir"/usr/bin/wasm-ld* >/dev/null 2>&1 || { echo "wasm-toolchain: wasm-ld missing" >&2; exit 1; }
touch "$stamp"
echo "$dir"
