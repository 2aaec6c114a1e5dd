#!/usr/bin/env python3
"""Print the events in Event Hubs Capture Avro files, one JSON line each, using fastavro.

Works the same on the collector's local capture files and on files Azure Event Hubs Capture
wrote to a Data Lake (download them first, e.g. with `az storage fs directory download`).

    pip install fastavro
    python3 examples/read_capture.py data/capture            # a directory: every *.avro below it
    python3 examples/read_capture.py some/file.avro --meta   # also SequenceNumber, Offset, ...
"""

import argparse
import json
import pathlib
import sys

try:
    import fastavro
except ImportError:
    sys.exit("read_capture.py needs fastavro: pip install fastavro")


def avro_files(paths):
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            yield from sorted(p.rglob("*.avro"))
        else:
            yield p


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="capture files or directories")
    p.add_argument("--meta", action="store_true", help="wrap each event with the Capture record's fields")
    args = p.parse_args()

    count = 0
    for path in avro_files(args.paths):
        with open(path, "rb") as f:
            for record in fastavro.reader(f):
                event = json.loads(record["Body"]) if record["Body"] is not None else None
                if args.meta:
                    out = {k: v for k, v in record.items() if k != "Body"}
                    out["file"] = str(path)
                    out["Body"] = event
                else:
                    out = event
                print(json.dumps(out, default=str))
                count += 1
    print("%d events" % count, file=sys.stderr)


if __name__ == "__main__":
    main()
