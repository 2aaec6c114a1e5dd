#!/usr/bin/env python3
"""Check that azuredeploy.json (hand-written ARM) still matches main.bicep (the source).

No Bicep compiler is available to build one from the other, so this compares what can drift:
parameter names, types, defaults and limits; resource types and API versions; outputs.
Prints TAP-style '# pass N' / '# fail N' lines and exits non-zero on a mismatch.
"""

import json
import pathlib
import re
import sys

here = pathlib.Path(__file__).parent
bicep = (here / "main.bicep").read_text()
arm = json.loads((here / "azuredeploy.json").read_text())
failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print(f"not ok - {what}")


def literal(text):
    text = text.strip()
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return None  # an expression: compared by hand, not here


# Parameters: decorators, then `param name type = default`.
params = {}
for m in re.finditer(r"((?:@\w+\((?:[^()]|\([^()]*\))*\)\s*)*)param (\w+) (\w+)(?: = ([^\n]+))?", bicep):
    decorators, name, type_, default = m.groups()
    p = {"type": type_}
    for key in ("minValue", "maxValue", "minLength", "maxLength"):
        d = re.search(rf"@{key}\((-?\d+)\)", decorators)
        if d:
            p[key] = int(d.group(1))
    allowed = re.search(r"@allowed\(\[(.*?)\]\)", decorators, re.S)
    if allowed:
        p["allowedValues"] = re.findall(r"'([^']*)'", allowed.group(1))
    if default is not None:
        p["defaultValue"] = literal(default)
    params[name] = p

check(set(params) == set(arm["parameters"]), f"parameter names: bicep {sorted(params)} vs arm {sorted(arm['parameters'])}")
for name, p in params.items():
    a = arm["parameters"].get(name, {})
    check(p["type"] == a.get("type"), f"{name}: type {p['type']} vs {a.get('type')}")
    for key in ("minValue", "maxValue", "minLength", "maxLength", "allowedValues"):
        check(p.get(key) == a.get(key), f"{name}: {key} {p.get(key)} vs {a.get(key)}")
    if p.get("defaultValue") is not None:
        check(p["defaultValue"] == a.get("defaultValue"), f"{name}: default {p['defaultValue']!r} vs {a.get('defaultValue')!r}")

resources = sorted(set(re.findall(r"resource \w+ '([^']+)'", bicep)))
arm_resources = sorted({f"{r['type']}@{r['apiVersion']}" for r in arm["resources"]})
check(resources == arm_resources, f"resources: bicep {resources} vs arm {arm_resources}")

outputs = sorted(re.findall(r"^output (\w+) ", bicep, re.M))
check(outputs == sorted(arm["outputs"]), f"outputs: bicep {outputs} vs arm {sorted(arm['outputs'])}")

for literal_text in ("EventHubArchive.AzureBlockBlob", "Avro", "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}", "'Send'", "isHnsEnabled: true"):
    needle = literal_text.strip("'").replace("isHnsEnabled: true", '"isHnsEnabled": true')
    check(needle in json.dumps(arm), f"ARM template carries {literal_text}")

print(f"# pass {checks - len(failures)}")
print(f"# fail {len(failures)}")
sys.exit(1 if failures else 0)
