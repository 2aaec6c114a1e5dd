#!/usr/bin/env python3
"""Check that each hand-written ARM template still matches its Bicep source.

    main.bicep -> azuredeploy.json        Event Hubs with Capture to ADLS Gen2
    lake.bicep -> lake.azuredeploy.json   storage only: the collectors upload capture files

No Bicep compiler is available to build one from the other, so this compares what can drift:
parameter names, types, defaults, limits and descriptions; resource types and API versions;
outputs and their descriptions; and the settings each template exists for. Needs no network.
Prints 'not ok - ...' per mismatch, then TAP-style '# pass N' / '# fail N' lines, and exits
non-zero on a mismatch.
"""

import json
import pathlib
import re
import sys

here = pathlib.Path(__file__).parent
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


def description(decorators):
    d = re.search(r"@description\('((?:[^'\\]|\\.)*)'\)", decorators)
    return d.group(1).replace("\\'", "'") if d else None


def check_pair(bicep_name, arm_name, needles):
    """needles: (text that must be in the Bicep or None, text that must be in the ARM JSON or None)."""
    bicep = (here / bicep_name).read_text()
    arm = json.loads((here / arm_name).read_text())
    tag = f"{bicep_name} vs {arm_name}"

    # Parameters: decorators, then `param name type = default`.
    params = {}
    for m in re.finditer(r"((?:@\w+\((?:[^()]|\([^()]*\))*\)\s*)*)param (\w+) (\w+)(?: = ([^\n]+))?", bicep):
        decorators, name, type_, default = m.groups()
        p = {"type": type_, "description": description(decorators)}
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

    check(set(params) == set(arm["parameters"]), f"{tag}: parameter names: bicep {sorted(params)} vs arm {sorted(arm['parameters'])}")
    for name, p in params.items():
        a = arm["parameters"].get(name, {})
        check(p["type"] == a.get("type"), f"{tag}: {name}: type {p['type']} vs {a.get('type')}")
        for key in ("minValue", "maxValue", "minLength", "maxLength", "allowedValues"):
            check(p.get(key) == a.get(key), f"{tag}: {name}: {key} {p.get(key)} vs {a.get(key)}")
        if p.get("defaultValue") is not None:
            check(p["defaultValue"] == a.get("defaultValue"), f"{tag}: {name}: default {p['defaultValue']!r} vs {a.get('defaultValue')!r}")
        arm_description = a.get("metadata", {}).get("description")
        check(p["description"] == arm_description, f"{tag}: {name}: description {p['description']!r} vs {arm_description!r}")

    resources = sorted(set(re.findall(r"resource \w+ '([^']+)'", bicep)))
    arm_resources = sorted({f"{r['type']}@{r['apiVersion']}" for r in arm["resources"]})
    check(resources == arm_resources, f"{tag}: resources: bicep {resources} vs arm {arm_resources}")

    outputs = {}
    for m in re.finditer(r"((?:@\w+\((?:[^()]|\([^()]*\))*\)\s*)*)^output (\w+) (\w+) ", bicep, re.M):
        decorators, name, type_ = m.groups()
        outputs[name] = {"type": type_, "description": description(decorators)}
    check(sorted(outputs) == sorted(arm["outputs"]), f"{tag}: outputs: bicep {sorted(outputs)} vs arm {sorted(arm['outputs'])}")
    for name, o in outputs.items():
        a = arm["outputs"].get(name, {})
        check(o["type"] == a.get("type"), f"{tag}: output {name}: type {o['type']} vs {a.get('type')}")
        arm_description = a.get("metadata", {}).get("description")
        check(o["description"] == arm_description, f"{tag}: output {name}: description {o['description']!r} vs {arm_description!r}")

    arm_text = json.dumps(arm)
    for in_bicep, in_arm in needles:
        if in_bicep is not None:
            check(in_bicep in bicep, f"{bicep_name} carries {in_bicep}")
        if in_arm is not None:
            check(in_arm in arm_text, f"{arm_name} carries {in_arm}")
    return bicep, arm


check_pair("main.bicep", "azuredeploy.json", [
    (None, "EventHubArchive.AzureBlockBlob"),
    (None, "Avro"),
    (None, "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"),
    (None, "Send"),
    (None, '"isHnsEnabled": true'),
])

ROLE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
lake_bicep, lake_arm = check_pair("lake.bicep", "lake.azuredeploy.json", [
    ("isHnsEnabled: true", '"isHnsEnabled": true'),
    ("minimumTlsVersion: 'TLS1_2'", '"minimumTlsVersion": "TLS1_2"'),
    ("supportsHttpsTrafficOnly: true", '"supportsHttpsTrafficOnly": true'),
    ("allowBlobPublicAccess: false", '"allowBlobPublicAccess": false'),
    ("allowSharedKeyAccess: allowSharedKeyAccess", "\"allowSharedKeyAccess\": \"[parameters('allowSharedKeyAccess')]\""),
    ("var captureContainer = 'capture'", '"captureContainer": "capture"'),
    ("publicAccess: 'None'", '"publicAccess": "None"'),
    (f"'{ROLE_BLOB_DATA_CONTRIBUTOR}'", f'"{ROLE_BLOB_DATA_CONTRIBUTOR}"'),
    ("scope: storage", "\"scope\": \"[format('Microsoft.Storage/storageAccounts/{0}', take(variables('storageName'), 24))]\""),
    ("if (!empty(collectorPrincipalId))", "\"condition\": \"[not(empty(parameters('collectorPrincipalId')))]\""),
    ("'abfss://${captureContainer}@${storage.name}.dfs.${environment().suffixes.storage}/'",
     "[format('abfss://{0}@{1}.dfs.{2}/', variables('captureContainer'), take(variables('storageName'), 24), environment().suffixes.storage)]"),
])
# Storage only: no Event Hubs anywhere in the variant.
check("Microsoft.EventHub" not in lake_bicep, "lake.bicep deploys no Event Hubs resource")
check(not any(r["type"].startswith("Microsoft.EventHub") for r in lake_arm["resources"]), "lake.azuredeploy.json deploys no Event Hubs resource")
check(all(r["type"] != "Microsoft.Authorization/roleAssignments" or "condition" in r for r in lake_arm["resources"]),
      "lake.azuredeploy.json: the role assignment is conditional on collectorPrincipalId")

print(f"# pass {checks - len(failures)}")
print(f"# fail {len(failures)}")
sys.exit(1 if failures else 0)
