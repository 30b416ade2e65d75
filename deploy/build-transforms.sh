#!/usr/bin/env bash
# Builds the guest transforms (transforms/, a separate cargo workspace) to WebAssembly components
# and copies them to OUT_DIR as <crate_name>.wasm (cargo's name: hyphens become underscores).
# Uses Debian's rustc + std source from deploy/wasm-toolchain.sh (rustup has no wasm target here)
# and its own target dir, transforms/target/wasm, so rebuilds are incremental. Every output is
# checked to be a component that imports nothing (the host links no WASI).
#   usage: deploy/build-transforms.sh OUT_DIR [crate...]     (no crate: every cdylib crate)
set -euo pipefail

fail() { echo "build-transforms: $*" >&2; exit 1; }
trap 'echo "build-transforms: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

[[ $# -ge 1 && -n "$1" ]] || fail "usage: $0 OUT_DIR [crate...]"
out="$1"; shift
started=$(date +%s%N)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ws="$root/transforms"
[[ -f "$ws/Cargo.toml" ]] || fail "$ws/Cargo.toml not found"
mkdir -p "$out" || fail "cannot create $out"
out="$(cd "$out" && pwd)"

tc="$("$root/deploy/wasm-toolchain.sh")" || fail "the wasm toolchain is missing and deploy/wasm-toolchain.sh \
could not provide it (it unpacks Debian's rustc-web 1.96 + rust-web-src with apt-get download; \
see docs in that script and PLATFORM.md)"
wasm_ld=$(ls "$tc"/usr/bin/wasm-ld* 2>/dev/null | head -n1 || true)
component_ld="$tc/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld"
[[ -x "$tc/usr/bin/rustc" && -n "$wasm_ld" && -x "$component_ld" ]] \
  || fail "toolchain in $tc is incomplete (rustc, wasm-ld or wasm-component-ld missing); remove it and rerun"

# A build script or CI may call us from inside another cargo: drop what would leak into this
# build (another compiler, flags, target dir or target).
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTFLAGS CARGO_ENCODED_RUSTFLAGS \
  CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR RUSTDOC \
  CARGO_MANIFEST_DIR CARGO_PRIMARY_PACKAGE CARGO_PKG_NAME
export RUSTC="$tc/usr/bin/rustc"
export RUSTC_BOOTSTRAP=1
export LD_LIBRARY_PATH="$tc/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Clink-arg=--wasm-ld-path=$wasm_ld -Clinker=$component_ld"
export CARGO_TARGET_DIR="$ws/target/wasm"

select=(--workspace)
if [[ $# -gt 0 ]]; then select=(); for c in "$@"; do select+=(-p "$c"); done; fi

mkdir -p "$CARGO_TARGET_DIR"
# Per run: two builds may share the target dir (cargo serialises them with its lock).
messages="$(mktemp "$CARGO_TARGET_DIR/build-transforms.XXXXXX")" || fail "cannot create a temp file"
trap 'rm -f "$messages"' EXIT
# JSON messages name exactly the artifacts of this build; diagnostics still go to stderr.
if ! cargo build --manifest-path "$ws/Cargo.toml" --release \
    -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown \
    --message-format=json-render-diagnostics "${select[@]}" >"$messages"; then
  fail "cargo build of the transforms failed (see the errors above)"
fi
mapfile -t artifacts < <(grep -ao '"[^"]*/wasm32-unknown-unknown/release/[^"/]*\.wasm"' "$messages" \
  | tr -d '"' | sort -u)
[[ ${#artifacts[@]} -gt 0 ]] || fail "the build produced no .wasm (are the crates cdylib?)"

# Checks a component-level import section ($2 = offset, $3 = length in file $1). Allowed: type
# imports, and the contract's own type-only instance (`use types.{..}` in the world imports
# `ponte:transform/types`; wasmtime satisfies it with an empty linker). Anything else - WASI or
# any function, value, module or other instance - is a capability the host does not provide.
check_imports() {
  local f="$1" b i=0 n count name len shift sort k
  read -r -a b <<<"$(od -An -tu1 -v -j "$2" -N "$3" "$f" | tr -s ' \n' ' ')"
  leb() { n=0; shift=0; while :; do local x=${b[i]}; i=$((i + 1)); n=$(( n | ((x & 127) << shift) )); shift=$((shift + 7)); (( x < 128 )) && break; done; }
  leb; count=$n
  for ((k = 0; k < count; k++)); do
    (( b[i] <= 1 )) || fail "$f: unexpected import name encoding ${b[i]}"
    i=$((i + 1)); leb; len=$n
    name=$(dd if="$f" bs=1 skip=$(($2 + i)) count="$len" status=none)
    i=$((i + len)); sort=${b[i]}; i=$((i + 1))
    case "$sort" in
      3) (( b[i] == 0 )) && { i=$((i + 1)); leb; } || i=$((i + 1)) ;;
      5) [[ "$name" == ponte:transform/* ]] || fail "$f imports instance \`$name\` (WASI?): a transform must import nothing"
         leb ;;
      *) fail "$f imports \`$name\` (sort $sort): a transform must import nothing" ;;
    esac
  done
}

# Fails unless $1 is a component (not a core module) whose only imports are the contract's types.
check_component() {
  local f="$1" size pos id len shift b h k
  [[ "$(od -An -tx1 -N8 "$f" | tr -d ' \n')" == "0061736d0d000100" ]] \
    || fail "$f is not a WebAssembly component (is wasm-component-ld the linker?)"
  size=$(stat -c %s "$f"); pos=8
  while (( pos < size )); do
    # One read per section: its id and up to 5 bytes of LEB128 length.
    read -r -a h <<<"$(od -An -tu1 -j "$pos" -N6 "$f")"
    id=${h[0]}; len=0; shift=0; k=1
    while :; do
      b=${h[k]:-0}; k=$((k + 1))
      len=$(( len | ((b & 127) << shift) )); shift=$((shift + 7))
      (( b < 128 || k > 5 )) && break
    done
    pos=$((pos + k))
    if (( id == 10 )); then check_imports "$f" "$pos" "$len"; fi
    pos=$((pos + len))
  done
  (( pos == size )) || fail "$f: malformed component sections"
}

printf '%-24s %10s\n' "component" "bytes"
for a in "${artifacts[@]}"; do
  name="$(basename "$a")"
  # Check and replace only when changed (what is in OUT_DIR was checked), atomically: a watching
  # daemon never sees half a file.
  if ! cmp -s "$a" "$out/$name"; then
    check_component "$a"
    cp "$a" "$out/.$name.$$" && mv -f "$out/.$name.$$" "$out/$name" || fail "cannot write $out/$name"
  fi
  printf '%-24s %10s\n' "${name}" "$(stat -c %s "$out/$name")"
done
ms=$(( ($(date +%s%N) - started) / 1000000 ))
printf 'build-transforms: %d component(s) in %s, %d.%03ds\n' "${#artifacts[@]}" "$out" $((ms / 1000)) $((ms % 1000)) >&2
