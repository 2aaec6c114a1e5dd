# Sourced by the benchmarks: wrk, their scratch directory, a port wait, CPU ticks of a process,
# and the load they send.

# `need_wrk`: install wrk if it is missing.
need_wrk() { command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }

# `proc_ticks PID`: CPU ticks (user + system, all threads) the process PID has used.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# `bench_scratch`: sets `work` to a new directory that is removed on exit, after any servers the
# script started in the background are stopped. (`|| true`: under set -e a failed kill, with no
# jobs left, would end the trap before the rm.)
bench_scratch() {
  work=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
}

# `wait_port PORT`: wait up to 10 s for a server to listen on 127.0.0.1:PORT.
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# `bench_load DIR` writes DIR/batch.json, a 10-event Segment batch of about 6 KB (track events as
# a shop's tracker sends them), and DIR/post.lua, a wrk script that POSTs it with fresh
# messageIds on every request: the collector stores a resent event once, so replaying one body
# would measure its duplicate check instead of the pipeline. With INVALID_EVENTS=N the first N
# events lack both ids, so each request also writes N dead letters.
bench_load() {
  local dir=$1
  INVALID_EVENTS=${INVALID_EVENTS:-0} python3 - "$dir/batch.json" <<'PY'
import json, os, sys, uuid
invalid = int(os.environ["INVALID_EVENTS"])
events = []
for i in range(10):
    events.append({
        "type": "track", "event": "Product Viewed", "anonymousId": str(uuid.uuid4()), "userId": f"user-{i}",
        "timestamp": "2026-11-28T12:00:00.000Z", "messageId": f"MID{i}",
        "properties": {"product_id": f"sku-{i:06d}", "name": "Trail running shoe", "price": 129.99,
                       "currency": "EUR", "position": i},
        "context": {"page": {"url": f"https://shop.example/p/sku-{i:06d}", "path": f"/p/sku-{i:06d}",
                             "title": "Trail running shoe | Example Shop", "referrer": "https://shop.example/search"},
                    "locale": "en-GB", "screen": {"width": 1920, "height": 1080},
                    "library": {"name": "clickstream-tracker", "version": "0.1.0"}},
    })
for e in events[:invalid]:
    del e["anonymousId"], e["userId"]
body = json.dumps({"batch": events, "sentAt": "2026-11-28T12:00:01.000Z", "writeKey": "bench"})
open(sys.argv[1], "w").write(body)
print(f"batch: 10 events ({invalid} invalid), {len(body)} bytes")
PY
  bench_plan "$dir/plan"
  cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$dir/batch.json", "r"); local template = f:read("*a"); f:close()
local counter = 0
function setup(thread) thread:set("tid", tostring(math.random(1, 1000000000))) end
function request()
  counter = counter + 1
  local prefix = tid .. "-" .. counter .. "-"
  local body = template:gsub("MID(%d)", function(d) return prefix .. d end)
  return wrk.format(nil, nil, nil, body)
end
LUA
}

# `bench_plan DIR` writes a 20-event tracking plan (the Segment e-commerce spec's events) whose
# "Product Viewed" schema the load's events match: types, required fields, a pattern, an enum,
# formats and a shared definition, as a real plan has.
bench_plan() {
  mkdir -p "$1/defs"
  python3 - "$1" <<'PY'
import json, sys
d = sys.argv[1]
json.dump({"$defs": {
    "money": {"type": "number", "minimum": 0},
    "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
    "product_id": {"type": "string", "pattern": "^sku-[0-9]{6}$"},
    "page": {"type": "object", "required": ["url", "path"],
             "properties": {"url": {"type": "string", "format": "uri"}, "path": {"type": "string"},
                            "title": {"type": "string", "maxLength": 300}, "referrer": {"type": "string"}}}}},
  open(f"{d}/defs/common.json", "w"))
names = ["Product Viewed", "Product Clicked", "Product Added", "Product Removed", "Product List Viewed",
         "Product List Filtered", "Products Searched", "Cart Viewed", "Checkout Started", "Checkout Step Viewed",
         "Checkout Step Completed", "Payment Info Entered", "Order Completed", "Order Updated", "Order Refunded",
         "Order Cancelled", "Coupon Entered", "Coupon Applied", "Promotion Viewed", "Product Shared"]
for i, name in enumerate(names):
    json.dump({
        "x-type": "track", "x-event": name, "required": ["properties", "context"],
        "properties": {
            "userId": {"type": "string", "minLength": 1},
            "properties": {"type": "object", "required": ["product_id", "price"], "properties": {
                "product_id": {"$ref": "defs/common.json#/$defs/product_id"},
                "name": {"type": "string", "maxLength": 200},
                "price": {"$ref": "defs/common.json#/$defs/money"},
                "currency": {"$ref": "defs/common.json#/$defs/currency"},
                "position": {"type": "integer", "minimum": 0}}},
            "context": {"type": "object", "properties": {"page": {"$ref": "defs/common.json#/$defs/page"},
                                                          "locale": {"type": "string"}}}}},
      open(f"{d}/event-{i:02d}.json", "w"))
PY
}
