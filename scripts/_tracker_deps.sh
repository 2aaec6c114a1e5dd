# Sourced by scripts: install what building the wasm tracker needs (idempotent): the wasm
# target, the wasm-bindgen CLI matching Cargo.lock, and the npm build tools (binaryen, terser).
ensure_tracker_build_deps() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  local want have
  want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$want" != "$have" ]; then
    echo "installing wasm-bindgen-cli $want (have: ${have:-none})"
    cargo install wasm-bindgen-cli --version "$want" --no-default-features --quiet
  fi
  (cd tracker/tools && npm ci --no-audit --no-fund --loglevel=error)
}
