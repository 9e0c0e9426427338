#!/usr/bin/env bash
# Trunk post-build hook (Trunk.toml): a second build of the engine worker with wasm relaxed SIMD
# (`f32x4.relaxed_madd`: one fused multiply-add where the CPU has FMA), next to Trunk's plain
# SIMD128 build. The page's worker boot script probes the browser (`WebAssembly.validate` of
# a one-instruction module) and loads attnlab-worker-relaxed.js where it validates, the plain
# attnlab-worker.js otherwise, or when this file is absent. Needs what `make setup` installs.
set -euo pipefail
profile="${TRUNK_PROFILE:-release}"
out="${TRUNK_STAGING_DIR:?run by trunk (Trunk.toml [[hooks]])}"
release=()
[ "$profile" = release ] && release=(--release)
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo build --offline --quiet "${release[@]}" \
  --target wasm32-unknown-unknown --features web --bin attnlab-worker --target-dir target/relaxed-simd
wasm-bindgen --target no-modules --no-typescript --out-dir "$out" --out-name attnlab-worker-relaxed \
  "target/relaxed-simd/wasm32-unknown-unknown/$profile/attnlab-worker.wasm"
# npm binaryen first: Debian's wasm-opt 108 breaks the module.
wasm_opt=node_modules/.bin/wasm-opt
[ -x "$wasm_opt" ] || wasm_opt=wasm-opt
if [ "$profile" = release ]; then
  "$wasm_opt" -Oz --enable-simd --enable-relaxed-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$out/attnlab-worker-relaxed_bg.wasm" -o "$out/attnlab-worker-relaxed_bg.wasm"
fi
