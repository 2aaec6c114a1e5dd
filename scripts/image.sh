#!/usr/bin/env bash
# about: container image clickstream-collector:VERSION (FROM scratch, the static binary of ./dev dist)
# Uses docker when a daemon answers, else podman (installed with apt when missing). Extra global
# flags for the engine go in CONTAINER_FLAGS (the tests use `--storage-driver vfs`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dist.sh
version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version = /{print $2; exit}' Cargo.toml)
if [ -z "${CONTAINER_ENGINE:-}" ]; then
  if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then
    CONTAINER_ENGINE=docker
  else
    CONTAINER_ENGINE=podman
  fi
fi
if [ "$CONTAINER_ENGINE" = podman ] && ! command -v podman >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq podman runc >/dev/null
fi
# The build context: the binary, the tracker package and an empty directory for /data.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp dist/collector "$ctx/"
cp -r "dist/clickstream-collector-$version/tracker" "$ctx/"
mkdir "$ctx/empty"
# Root certificates for HTTPS to object stores (Debian's ca-certificates bundle).
if [ ! -f /etc/ssl/certs/ca-certificates.crt ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates >/dev/null
fi
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
format=()
# podman writes OCI images by default, which drop HEALTHCHECK; docker's format keeps it.
[ "$CONTAINER_ENGINE" = podman ] && format=(--format docker)
# shellcheck disable=SC2086
$CONTAINER_ENGINE ${CONTAINER_FLAGS:-} build "${format[@]}" \
  -t "clickstream-collector:$version" -t clickstream-collector:latest -f Containerfile "$ctx"
echo "built image clickstream-collector:$version with $CONTAINER_ENGINE"
