"""Capture files straight into Azure Blob storage, end to end, against Azurite.

The real collector binary sends its capture files to Azurite (the Azure Storage emulator, npm
`azurite`) with `--capture-url az://capture/lake`. Events go in over HTTP; they are read back
from the emulator with an independent reader (azure-storage-blob + fastavro), and every
acknowledged event must be there exactly once, under the Event Hubs Capture path layout and
schema. Faults: Azurite stopped for 30 s under load, and the collector killed with SIGKILL in
the middle of uploads. Prints TAP lines; exits non-zero on a failure.

Usage: python3 test_lake.py COLLECTOR_BINARY [TEST_NAME...]
"""

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import fastavro
from azure.storage.blob import BlobServiceClient

HERE = os.path.dirname(os.path.abspath(__file__))
AZURITE = os.path.join(HERE, "node_modules", ".bin", "azurite-blob")
ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public, not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "capture"
PATH_RE = re.compile(r"^lake/ns/hub/(\d+)/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}/\d{2}\.avro$")
CAPTURE_FIELDS = ["SequenceNumber", "Offset", "EnqueuedTimeUtc", "SystemProperties", "Properties", "Body"]

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {what}", flush=True)
    else:
        failed += 1
        print(f"not ok - {what} {detail}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Azurite:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="azurite-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", self.dir,
             "--skipApiVersionCheck", "--loose", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        if self.proc:
            # SIGINT is Azurite's clean stop (it saves its metadata); SIGTERM waits for idle
            # keep-alive connections.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def service(self):
        conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")
        return BlobServiceClient.from_connection_string(conn)

    def url(self):
        return f"http://127.0.0.1:{self.port}"


class Collector:
    def __init__(self, binary, data_dir, azurite, args=(), env=None):
        self.binary, self.data_dir, self.azurite = binary, data_dir, azurite
        self.args, self.env = list(args), env
        self.port = free_port()
        self.log = open(os.path.join(data_dir, "collector.log"), "ab")
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env.update({
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": self.azurite.url(),
            "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": KEY,
            "RUST_LOG": "info",
        })
        env.update(self.env or {})
        self.proc = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir, "--sink", "capture",
             "--capture-url", "az://capture/lake", "--capture-namespace", "ns", "--capture-eventhub", "hub",
             *self.args],
            env={k: v for k, v in env.items() if v is not None}, stdout=self.log, stderr=self.log)
        wait_port(self.port)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def readyz(self):
        status, body = self.get("/readyz")
        return status, json.loads(body)

    def metric(self, name):
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log_text(self):
        with open(os.path.join(self.data_dir, "collector.log"), "rb") as f:
            return f.read().decode(errors="replace")


def post_batch(port, events, timeout=10):
    body = json.dumps({"batch": events, "writeKey": "wk"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/batch", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def make_events(run, n, pad=0):
    return [{"type": "track", "event": "Lake Test", "messageId": f"{run}-{uuid.uuid4()}",
             "anonymousId": f"anon-{i % 7}", "properties": {"i": i, "pad": "x" * pad}} for i in range(n)]


def read_lake(az):
    """Every record in every capture blob: [(blob name, record, writer schema)]."""
    out = []
    container = az.service().get_container_client(CONTAINER)
    for blob in container.list_blobs(name_starts_with="lake/"):
        data = container.download_blob(blob.name).readall()
        reader = fastavro.reader(io.BytesIO(data))
        for rec in reader:
            out.append((blob.name, rec, reader.writer_schema))
    return out


def wait_until(pred, timeout, step=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def tally(acked, records):
    """(lost, duplicated) acknowledged messageIds."""
    seen = {}
    for _, rec, _ in records:
        mid = json.loads(rec["Body"])["messageId"]
        seen[mid] = seen.get(mid, 0) + 1
    lost = sum(1 for m in acked if m not in seen)
    dups = sum(c - 1 for c in seen.values() if c > 1)
    return lost, dups


def test_layout_and_schema(binary, az):
    print("# events over HTTP land in Azurite, in the Capture layout and schema", flush=True)
    data = tempfile.mkdtemp(prefix="lake-")
    c = Collector(binary, data, az, ["--capture-roll-secs", "2"])
    c.start()
    acked = []
    for b in range(10):
        events = make_events("layout", 50)
        if post_batch(c.port, events) == 200:
            acked += [e["messageId"] for e in events]
    check(len(acked) == 500, "500 events acknowledged", len(acked))
    status, ready = c.readyz()
    check(status == 200 and ready["lag"].get("capture", 0) > 0,
          "before the roll the spool holds the events for the capture sink", ready)
    check(wait_until(lambda: c.readyz()[1]["lag"].get("capture") == 0, 30), "the lag falls to 0 once uploaded")
    records = read_lake(az)
    lost, dups = tally(acked, records)
    check((lost, dups) == (0, 0), "every acknowledged event is in the store once", (lost, dups))
    names = sorted({n for n, _, _ in records})
    check(all(PATH_RE.match(n) for n in names), "paths are {prefix}/ns/hub/0/YYYY/MM/DD/HH/mm/ss.avro", names)
    schema = records[0][2]
    check(schema["name"].endswith("EventData") and "Microsoft.ServiceBus.Messaging" in schema["name"],
          "the writer schema is Event Hubs Capture's EventData", schema["name"])
    check([f["name"] for f in schema["fields"]] == CAPTURE_FIELDS, "the schema's fields are Capture's, in order",
          [f["name"] for f in schema["fields"]])
    rec = records[0][1]
    body = json.loads(rec["Body"])
    check(isinstance(rec["SequenceNumber"], int) and isinstance(rec["Offset"], str)
          and re.match(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)$", rec["EnqueuedTimeUtc"]),
          "SequenceNumber long, Offset string, EnqueuedTimeUtc as Capture writes it", rec["EnqueuedTimeUtc"])
    check(isinstance(rec["SystemProperties"], dict) and isinstance(rec["Properties"], dict),
          "SystemProperties and Properties are maps")
    check(body["event"] == "Lake Test" and body["type"] == "track" and body.get("receivedAt"),
          "Body is the enriched event JSON", body)
    seqs = [r["SequenceNumber"] for _, r, _ in records]
    check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "sequence numbers increase across files")
    out = subprocess.run([binary, "capture", "stats", "--json", "az://capture/lake"], capture_output=True,
                         env={**os.environ, "AZURE_STORAGE_USE_EMULATOR": "true",
                              "AZURITE_BLOB_STORAGE_URL": az.url()}, timeout=60)
    stats = json.loads(out.stdout or b"{}")
    check(stats.get("total") == 500, "collector capture stats reads the files from the az:// URL",
          out.stderr.decode()[-300:])
    check(c.stop() == 0, "the collector stops cleanly")
    log = c.log_text()
    check(KEY not in log and KEY[:20] not in log, "the account key never appears in the log")
    shutil.rmtree(data)


def test_outage(binary, az):
    print("# Azurite stopped for 30 s under load, then started again", flush=True)
    data = tempfile.mkdtemp(prefix="lake-")
    c = Collector(binary, data, az, ["--capture-roll-secs", "1"])
    c.start()
    acked, refused = [], [0]
    stop = threading.Event()

    def load():
        while not stop.is_set():
            events = make_events("outage", 20, pad=200)
            status = post_batch(c.port, events)
            if status == 200:
                acked.extend(e["messageId"] for e in events)
            else:
                refused[0] += 1
            time.sleep(0.05)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(3)
    az.stop()
    down_at = time.time()
    time.sleep(15)
    status, ready = c.readyz()
    lag_mid = ready["lag"].get("capture", 0)
    check(status == 200 and lag_mid > 0, "while the store is down the collector stays ready; /readyz shows the lag",
          (status, ready))
    time.sleep(15)
    lag_late = c.readyz()[1]["lag"].get("capture", 0)
    check(lag_late > lag_mid, "the spool grows through the outage", (lag_mid, lag_late))
    check(c.metric('collector_capture_uploads_total{result="error"}') > 0, "failed uploads are counted")
    az.start()
    up_at = time.time()
    time.sleep(3)
    stop.set()
    t.join()
    check(wait_until(lambda: c.readyz()[1]["lag"].get("capture") == 0, 120), "the backlog drains once it is back")
    catch_up = time.time() - up_at
    records = [r for r in read_lake(az) if json.loads(r[1]["Body"])["messageId"].startswith("outage-")]
    lost, dups = tally(acked, records)
    print(f"# outage {up_at - down_at:.0f} s: {len(acked)} acknowledged, {refused[0]} batches refused, "
          f"lag {lag_late} events at the end of it, caught up {catch_up:.1f} s after the store returned; "
          f"lost {lost}, duplicates {dups}", flush=True)
    check(lost == 0, "nothing acknowledged is lost", lost)
    check(dups == 0, "no event is stored twice", dups)
    check(c.stop() == 0, "the collector stops cleanly")
    log = c.log_text()
    check("capture upload" in log and KEY not in log, "upload errors are logged without the key")
    shutil.rmtree(data)


def test_kill_during_upload(binary, az, rounds=3):
    print(f"# the collector killed with SIGKILL during an upload, {rounds} times", flush=True)
    data = tempfile.mkdtemp(prefix="lake-")
    # Files of ~24 MB: three 10 MiB blocks, so an upload takes a while and is multipart.
    c = Collector(binary, data, az, ["--capture-roll-secs", "3600", "--capture-roll-bytes", "24000000",
                                     "--spool-max-bytes", "2000000000"])
    c.start()
    acked = []
    kills = 0
    for r in range(rounds):
        before = c.log_text().count("capture upload started")
        sent = 0
        while c.log_text().count("capture upload started") == before and sent < 60000:
            events = make_events(f"kill{r}", 200, pad=900)
            if post_batch(c.port, events, timeout=30) == 200:
                acked.extend(e["messageId"] for e in events)
            sent += 200
        if c.log_text().count("capture upload started") > before:
            c.kill9()
            kills += 1
        else:
            c.stop()
        c.start()
    check(kills == rounds, f"killed {kills} times while an upload was in flight", kills)
    tail = make_events("tail", 50)
    if post_batch(c.port, tail) == 200:
        acked += [e["messageId"] for e in tail]
    check(c.stop() == 0, "the last run stops cleanly (and uploads what it holds)")
    records = [r for r in read_lake(az) if re.match(r"^(kill\d|tail)-", json.loads(r[1]["Body"])["messageId"])]
    lost, dups = tally(acked, records)
    files = len({n for n, _, _ in records})
    print(f"# {len(acked)} acknowledged, {len(records)} stored in {files} files; lost {lost}, duplicates {dups}",
          flush=True)
    check(lost == 0, "nothing acknowledged is lost across the kills", lost)
    check(dups == 0, "no duplicate file or event after the restarts", dups)
    check(not any(n.endswith(".tmp") for n, _, _ in records), "nothing partial is visible")
    shutil.rmtree(data)


def test_sas_is_not_logged(binary, az):
    print("# a SAS credential the store refuses: the error is logged, the signature is not", flush=True)
    data = tempfile.mkdtemp(prefix="lake-")
    secret = "c2VjcmV0LXNpZ25hdHVyZQ"
    c = Collector(binary, data, az, ["--capture-roll-secs", "1"],
                  env={"AZURE_STORAGE_ACCOUNT_KEY": None,
                       "AZURE_STORAGE_SAS_KEY": f"sv=2023-01-03&ss=b&srt=sco&sp=rwl&se=2030-01-01&sig={secret}"})
    c.start()
    check(post_batch(c.port, make_events("sas", 5)) == 200, "events are accepted into the spool")
    check(wait_until(lambda: c.metric('collector_capture_uploads_total{result="error"}') > 0, 60),
          "the refused upload is counted")
    check(c.readyz()[1]["lag"].get("capture", 0) == 5, "the events stay in the spool")
    c.stop()
    log = c.log_text()
    check(secret not in log, "the SAS signature is not in the log")
    check("failed" in log or "error" in log.lower(), "the failure is logged")
    shutil.rmtree(data)


def main():
    binary = os.path.abspath(sys.argv[1])
    az = Azurite()
    az.start()
    az.service().create_container(CONTAINER)
    only = sys.argv[2:]
    try:
        for t in (test_layout_and_schema, test_sas_is_not_logged, test_outage, test_kill_during_upload):
            if not only or t.__name__ in only:
                t(binary, az)
    finally:
        az.stop()
        shutil.rmtree(az.dir, ignore_errors=True)
    print(f"# pass {passed}\n# fail {failed}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
