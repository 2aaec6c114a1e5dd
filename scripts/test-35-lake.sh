#!/usr/bin/env bash
# about: capture files straight into Azure Blob storage, against Azurite (layout, schema, outage, kill -9)
# Installs what it needs (idempotent): Azurite from npm (tests/lake/package-lock.json) and, in a
# venv under target/, the independent reader: azure-storage-blob and fastavro from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/lake && npm ci --no-audit --no-fund --loglevel=error)
venv=target/lake-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"
  }
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/lake/requirements.txt
cargo build -p collector
"$venv/bin/python" tests/lake/test_lake.py target/debug/collector
