"""Helpers shared by the end-to-end tests (clients, frames, store handles, API shortcuts)."""
import asyncio
import base64
import json
import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pymongo
import websockets

from conftest import ROOT, basic, bin_dir, free_port, hello, wait_for

DAY_MS = 86_400_000


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


def now_ms():
    return int(time.time() * 1000)


def metrics_msg(seq, ts=None, tempC=50.0):
    return {"type": "metrics", "seq": seq, "ts": ts or now_ms(), "cpu": 10.0, "mem": 30.0, "tempC": tempC,
            "uptimeSec": 100 + seq, "rttMs": 8.0, "bitrateKbps": 6000, "underruns": 0, "droppedFrames": 0}


def padded_metrics(seq, size):
    """A metrics message of exactly `size` bytes: unknown fields are ignored (protocol.md), so a
    padding field makes frames big enough to fill a 16 MiB spool with a handful of them."""
    m = metrics_msg(seq)
    base = len(json.dumps({**m, "pad": ""}))
    frame = json.dumps({**m, "pad": "x" * (size - base)})
    assert len(frame) == size
    return frame


def db_of(hub, uri=None):
    return pymongo.MongoClient(uri or os.environ["MONGODB_URI"], serverSelectionTimeoutMS=5000)[hub.database]


def metric(hub, name):
    """The sum of a Prometheus metric's samples on /metrics (0 when absent)."""
    _, text, _ = hub.call("GET", "/metrics", token=False, expect=200)
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def connect(hub, device, secret, **kw):
    # No client keepalive pings: a hub that stops reading must not make the client give up.
    return await websockets.connect(hub.ws_url, additional_headers=basic(device, secret), open_timeout=10,
                                    ping_interval=None, max_size=None, **kw)


async def connect_and_hello(hub, device, secret, boot=None):
    ws = await connect(hub, device, secret)
    await ws.send(hello(boot=boot or f"boot-{device}"))
    w = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert w["type"] == "welcome", w
    return ws


async def next_frame(ws, pred, timeout=20, what="a frame"):
    """Reads frames until one matches `pred` (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout}s; saw {seen[-10:]}")
        try:
            m = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            continue
        if pred(m):
            return m
        seen.append(m)


async def expect_ack(ws, up_to, timeout=20):
    return await next_frame(ws, lambda m: m["type"] == "ack" and m["upTo"] >= up_to, timeout, f"ack up to {up_to}")


class PrivateStore:
    """A SecantusDB of the test's own (scripts/store), so that the test can stop and start it."""

    def __init__(self, tmp):
        self.port = free_port()
        self.dir = tmp / f"store-{self.port}"

    def _store(self, *args):
        subprocess.run([str(ROOT / "scripts/store"), *args, "--dir", str(self.dir)], check=True,
                       stdout=subprocess.DEVNULL, timeout=60)

    def start(self):
        self._store("start", "--port", str(self.port))
        return self

    def stop(self):
        self._store("stop")

    def uri(self, database, selection_ms=1000):
        return f"mongodb://127.0.0.1:{self.port}/{database}?directConnection=true&serverSelectionTimeoutMS={selection_ms}"


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def execution(hub, job, device):
    return hub.call("GET", f"/api/v1/commands/{job}/executions/{device}", expect=200)[1]


def wait_state(hub, job, device, states, timeout=30):
    states = {states} if isinstance(states, str) else set(states)

    def check():
        s, e, _ = hub.call("GET", f"/api/v1/commands/{job}/executions/{device}")
        return e if s == 200 and e["state"] in states else None
    return wait_for(check, timeout=timeout, what=f"{job} on {device} in {states}")


def history(e):
    return [h["state"] for h in e["history"]]


def issue(hub, name, target, params=None, expect=201, **extra):
    body = {"name": name, "target": target, **extra}
    if params is not None:
        body["params"] = params
    return hub.call("POST", "/api/v1/commands", body, expect=expect)[1]


def start_agent(hub, tmp, device, secret, *extra):
    log = tmp / f"{device}.log"
    p = subprocess.Popen([str(bin_dir() / "stb-agent"), "--hub", hub.ws_url, "--id", device, "--secret", secret,
                          "--state-dir", str(tmp / f"state-{device}"), "-v", *extra],
                         stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT)
    return p, log


def stop_agent(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def raw_upgrade_request(device, secret):
    key = base64.b64encode(os.urandom(16)).decode()
    auth = base64.b64encode(f"{device}:{secret}".encode()).decode()
    return (f"GET /v1/stb HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Basic {auth}\r\n\r\n").encode()


def read_http_response(sock, timeout=10):
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else None
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def client_frame(text):
    """A masked WebSocket text frame, as a client sends it."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    key = (mask * (n // 4 + 1))[:n]
    return head + mask + (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def iso(ms, fraction=False):
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{int(ms % 1000):03d}" if fraction else "") + "Z"


def ttl_indexes(db):
    out = {}
    for coll in ("metrics", "events", "logs", "audience"):
        for name, ix in db[coll].index_information().items():
            if "expireAfterSeconds" in ix:
                out[coll] = (ix["key"], int(ix["expireAfterSeconds"]))
    return out


_SPEC = None


def spec_errors(component, value):
    """What is wrong with `value` against `#/components/schemas/<component>` of docs/openapi.yaml
    (empty when it conforms): for answers the fuzzer cannot reach, such as a trained model's."""
    global _SPEC
    import jsonschema_rs
    import yaml
    if _SPEC is None:
        _SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    schema = {"$ref": f"#/components/schemas/{component}", "components": _SPEC["components"]}
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(value)]
