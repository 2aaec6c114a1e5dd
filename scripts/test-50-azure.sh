#!/usr/bin/env bash
# Check that examples/azure/azuredeploy.json (hand-written ARM) matches main.bicep.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 examples/azure/check_templates.py
