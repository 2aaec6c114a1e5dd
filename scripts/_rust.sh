# Sourced by scripts: make sure the Rust toolchain pieces the project needs are there.
ensure_rust_components() {
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
}
