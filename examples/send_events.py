#!/usr/bin/env python3
"""Post a batch of clickstream events to the collector, with the Python standard library only.

This is the article's "testing the flow" step, without base64 or a Logic App: the collector
speaks the Segment HTTP Tracking API, so a batch is plain JSON.

    python3 examples/send_events.py                      # 10 events to http://127.0.0.1:8080
    python3 examples/send_events.py --url http://host:8080 --count 100 --write-key wk_live_123
"""

import argparse
import base64
import datetime
import json
import sys
import urllib.error
import urllib.request
import uuid


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def events(count):
    anonymous_id = str(uuid.uuid4())
    pages = ["/", "/products", "/products/trail-shoe", "/cart", "/checkout"]
    for i in range(count):
        path = pages[i % len(pages)]
        if i % 3 == 0:
            yield {"type": "page", "name": path, "anonymousId": anonymous_id, "messageId": str(uuid.uuid4()),
                   "timestamp": now(), "properties": {"path": path, "url": "https://shop.example" + path},
                   "context": {"page": {"path": path}, "library": {"name": "send_events.py", "version": "1"}}}
        else:
            yield {"type": "track", "event": "Product Viewed", "anonymousId": anonymous_id,
                   "messageId": str(uuid.uuid4()), "timestamp": now(),
                   "properties": {"product_id": "sku-%04d" % i, "price": 129.99, "currency": "EUR"},
                   "context": {"page": {"path": path}, "library": {"name": "send_events.py", "version": "1"}}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080", help="collector base URL")
    p.add_argument("--count", type=int, default=10, help="number of events")
    p.add_argument("--write-key", default="demo", help="sent as HTTP Basic username, as Segment does")
    args = p.parse_args()

    body = json.dumps({"batch": list(events(args.count)), "sentAt": now()}).encode()
    auth = base64.b64encode((args.write_key + ":").encode()).decode()
    req = urllib.request.Request(args.url.rstrip("/") + "/v1/batch", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Basic " + auth})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            result = json.load(resp)
    except urllib.error.HTTPError as e:
        print("collector refused the batch: %s %s" % (e.code, e.read().decode()), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0 if result.get("rejected") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
