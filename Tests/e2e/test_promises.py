"""Documented behaviours that had no end-to-end test (issue 13, item 6).

Real hub processes, real clients (Python websockets, raw sockets, the C agent), real stores:
the shared SecantusDB of scripts/test, or one of a test's own where the test stops it.
"""
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pymongo
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

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


@pytest.fixture
def private_store(tmpdir_path):
    s = PrivateStore(tmpdir_path).start()
    yield s
    try:
        s.stop()
    except subprocess.SubprocessError:
        pass


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


# 1. A full spool closes telemetry sessions with 1013; above 90 % the hub stops reading.

def test_spool_above_90_percent_stops_reading_and_a_full_spool_closes_with_1013(make_hub, private_store):
    database = unique("spool")
    uri = private_store.uri(database)
    max_bytes = 16 << 20
    high = max_bytes // 10 * 9
    frame_bytes = 2_200_000   # more than the 10 % left above the mark, so one frame cannot fit then
    hub = make_hub(uri=uri, database=database, extra_args=[
        "--spool-max-mb", "16", "--max-frame-bytes", str(4 << 20), "--heartbeat", "60"]).start()
    secrets = {d: hub.register(d) for d in ("sp-a", "sp-b", "sp-c")}
    acked = {d: set() for d in secrets}
    marks = {}

    async def main():
        # Connected while the store is up: the node knows these boxes through the outage.
        conns = {d: await connect_and_hello(hub, d, s) for d, s in secrets.items()}
        await asyncio.to_thread(private_store.stop)
        a, b, c = conns["sp-a"], conns["sp-b"], conns["sp-c"]
        sizes = []
        seq = 1
        for seq in range(2, 14):
            await a.send(padded_metrics(seq, frame_bytes))
            await expect_ack(a, seq, timeout=30)
            acked["sp-a"].add(seq)
            sizes.append(hub.spool_bytes())
            if metric(hub, "argus_telemetry_read_pauses_total") >= 1:
                break
        else:
            raise AssertionError(f"reading never paused; spool sizes {sizes}")
        marks["sizes"] = sizes
        # A is not read any more: its ping (and the telemetry after it) waits in the socket.
        await a.send(json.dumps({"type": "ping", "id": "paused-a"}))
        await a.send(json.dumps(metrics_msg(seq + 1)))
        # Another box above the mark, with a frame that fits: durable and acknowledged, then
        # it is not read either.
        await c.send(json.dumps(metrics_msg(2)))
        await expect_ack(c, 2)
        acked["sp-c"].add(2)
        await c.send(json.dumps({"type": "ping", "id": "paused-c"}))
        # A frame that does not fit: not acknowledged, the session is closed with 1013.
        await b.send(padded_metrics(2, frame_bytes))
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(b, lambda m: m["type"] == "ack", timeout=30, what="an ack (or the close)")
        marks["b_close"] = closed.value.rcvd.code if closed.value.rcvd else None
        marks["full_total"] = metric(hub, "argus_telemetry_spool_full_total")
        marks["full_bytes"] = hub.spool_bytes()
        # The store comes back: the spool drains and the paused boxes are read again, so their
        # pings are answered only now.
        marks["store_back_ms"] = now_ms()
        await asyncio.to_thread(private_store.start)
        for ws, ref in ((a, "paused-a"), (c, "paused-c")):
            pong = await next_frame(ws, lambda m: m["type"] == "pong", timeout=90, what=f"the pong for {ref}")
            marks[ref] = pong
        await expect_ack(a, seq + 1, timeout=30)
        acked["sp-a"].add(seq + 1)
        # The box closed with 1013 reconnects and resends what was not acknowledged.
        b = await connect_and_hello(hub, "sp-b", secrets["sp-b"])
        await b.send(padded_metrics(2, frame_bytes))
        await expect_ack(b, 2, timeout=30)
        acked["sp-b"].add(2)
        for ws in (a, b, c):
            await ws.close()

    try:
        run(main(), timeout=240)
    except BaseException:
        print(hub.log_text())
        raise
    sizes = marks["sizes"]
    assert sizes[-1] > high and all(s <= high for s in sizes[:-1]), (sizes, high)   # paused at the 90 % mark, not before
    assert marks["b_close"] == 1013, marks
    assert marks["full_total"] >= 1
    assert marks["full_bytes"] <= max_bytes
    for ref in ("paused-a", "paused-c"):
        assert marks[ref]["ref"] == ref and marks[ref]["serverTime"] >= marks["store_back_ms"], (ref, marks[ref], marks["store_back_ms"])
    # Nothing acknowledged is lost.
    d = db_of(hub, uri)

    def stored():
        got = {dev: set() for dev in acked}
        for bucket in d.metrics.find():
            for s in bucket["samples"]:
                got.setdefault(bucket["d"], set()).add(s["s"])
        return got
    wait_for(lambda: all(acked[dev] <= stored().get(dev, set()) for dev in acked), timeout=90,
             what="every acknowledged message in the store")
    wait_for(lambda: hub.spool_bytes() <= max_bytes // 10 * 8, timeout=60, what="the spool to drain")


# 2. Hub-side retries with backoff up to --command-max-attempts, then TIMED_OUT.

def test_an_unconfirmed_command_is_resent_with_backoff_up_to_max_attempts_then_timed_out(make_hub):
    hub = make_hub(extra_args=["--heartbeat", "30", "--command-ack-timeout", "1", "--command-max-attempts", "3"]).start()
    secret = hub.register("mute-1")
    received = []

    async def main():
        ws = await connect_and_hello(hub, "mute-1", secret)
        job = await asyncio.to_thread(issue, hub, "message", {"device": "mute-1"}, {"text": "anyone there?"})

        async def read_commands():
            while True:
                m = json.loads(await ws.recv())
                if m["type"] == "command":
                    received.append(m)   # and never answered
                elif m["type"] == "pong" and m["ref"] == "barrier":
                    return

        reader = asyncio.create_task(read_commands())
        e = await asyncio.to_thread(wait_state, hub, job["id"], "mute-1", {"TIMED_OUT", "SUCCEEDED", "FAILED", "EXPIRED"}, 90)
        # Frames arrive in order: anything the hub sent before this pong has been read.
        await ws.send(json.dumps({"type": "ping", "id": "barrier"}))
        await asyncio.wait_for(reader, 20)
        await ws.close()
        return job, e

    job, e = run(main())
    assert e["state"] == "TIMED_OUT", e
    assert e["attempts"] == 3, e
    assert "3 deliveries" in e.get("reason", ""), e
    # Every transition is in the history: each unconfirmed delivery goes back to the queue.
    assert history(e) == ["QUEUED", "SENT", "QUEUED", "SENT", "QUEUED", "SENT", "TIMED_OUT"], e["history"]
    at = [h["at"] for h in e["history"]]
    assert at == sorted(at), at
    # Unconfirmed after the ack timeout (1 s), then sent again after a backoff of 5 s, then
    # 10 s (docs/commands.md: 5 s, 10 s, ...); the last one times out after the ack timeout.
    assert at[2] - at[1] >= 1000 - 50 and at[4] - at[3] >= 1000 - 50 and at[6] - at[5] >= 1000 - 50, at
    assert at[3] - at[2] >= 5000 - 50, at
    assert at[5] - at[4] >= 10000 - 50, at
    assert [m["id"] for m in received] == [job["id"]] * 3, received
    _, j, _ = hub.call("GET", f"/api/v1/commands/{job['id']}", expect=200)
    assert j["executions"]["TIMED_OUT"] == 1


# 3. Cancelling a running log_tail sends log_tail_stop to the box.

def test_cancelling_a_running_log_tail_sends_log_tail_stop_even_from_another_node(make_hub):
    a = make_hub(extra_args=["--heartbeat", "30"]).start()
    b = make_hub(extra_args=["--heartbeat", "30", "--command-notify", "poll", "--command-poll-ms", "200"], database=a.database).start()
    secret = a.register("tail-py")

    async def main():
        ws = await connect_and_hello(b, "tail-py", secret)   # the box is on node B
        job = await asyncio.to_thread(issue, b, "log_tail", {"device": "tail-py"}, {"durationSec": 600})
        cmd = await next_frame(ws, lambda m: m["type"] == "command", what="the log_tail command")
        assert cmd["id"] == job["id"] and cmd["name"] == "log_tail", cmd
        seq = 2
        for state, extra in (("received", {}), ("in_progress", {"progress": "streaming"})):
            await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": now_ms(), "ref": job["id"], "state": state, **extra}))
            seq += 1
        await ws.send(json.dumps({"type": "log", "seq": seq, "ts": now_ms(), "level": "info", "source": "e2e", "text": "tailing", "tail": job["id"]}))
        await expect_ack(ws, seq)
        await asyncio.to_thread(wait_state, a, job["id"], "tail-py", "IN_PROGRESS")
        # Cancelled on node A: B hears of it (polling) and tells its box to stop.
        _, c, _ = await asyncio.to_thread(a.call, "POST", f"/api/v1/commands/{job['id']}/cancel", None, None, 200)
        stop = await next_frame(ws, lambda m: m["type"] == "command", timeout=20, what="log_tail_stop")
        # The box ends the tail and reports it; a late report does not leave CANCELED.
        seq += 1
        await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": now_ms(), "ref": job["id"], "state": "succeeded",
                                  "result": {"lines": 1}}))
        seq += 1
        await ws.send(json.dumps({"type": "log", "seq": seq, "ts": now_ms(), "level": "info", "source": "e2e", "text": "after the report"}))
        await expect_ack(ws, seq)
        await ws.close()
        return job, c, stop

    job, c, stop = run(main())
    assert c["executionsCanceled"] == 1, c
    assert stop["name"] == "log_tail_stop" and stop["params"] == {"ref": job["id"]}, stop
    # The spool is applied in order: once the later log line is stored, so is the late report.
    wait_for(lambda: db_of(a).logs.count_documents({"d": "tail-py", "txt": "after the report"}) == 1, what="the later log line")
    e = execution(a, job["id"], "tail-py")
    assert e["state"] == "CANCELED" and history(e)[-1] == "CANCELED", e


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


def test_cancelling_a_log_tail_stops_the_c_agents_tail(hub, tmpdir_path):
    secret = hub.register("tail-c")
    p, log = start_agent(hub, tmpdir_path, "tail-c", secret)
    try:
        hub.wait_device("tail-c", lambda d: d["online"], timeout=20)
        job = issue(hub, "log_tail", {"device": "tail-c"}, {"durationSec": 600})
        wait_state(hub, job["id"], "tail-c", "IN_PROGRESS", timeout=20)
        hub.call("POST", f"/api/v1/commands/{job['id']}/cancel", expect=200)
        # The agent runs log_tail_stop (id JOB-stop, params.ref JOB) and ends the tail early,
        # reporting the tail finished and stopped by that command.
        # The agent logs the tail's end and the stop command's success a moment apart: wait for both.
        lines = (f"command {job['id']}: succeeded", f"command {job['id']}-stop: received", f"command {job['id']}-stop: succeeded")
        text = wait_for(lambda: (lambda t: t if all(x in t for x in lines) else None)(log.read_text(errors="replace")),
                        timeout=20, what="the agent to end the tail and report the stop")
        assert text.index(lines[1]) < text.index(lines[0]), text[-3000:]  # the tail ended because of the stop
        assert execution(hub, job["id"], "tail-c")["state"] == "CANCELED"
    finally:
        stop_agent(p)


# 4. GET /api/v1/tokens never returns a token; a revocation reaches the other node within 5 s.

def test_token_list_never_shows_a_token_and_a_revocation_is_refused_on_the_other_node_within_5_s(make_hub):
    a = make_hub(extra_args=["--heartbeat", "30"]).start()
    b = make_hub(extra_args=["--heartbeat", "30"], database=a.database).start()
    _, op, _ = a.call("POST", "/api/v1/tokens", {"name": "ops-1", "role": "operator"}, expect=201)
    _, ana, _ = a.call("POST", "/api/v1/tokens", {"name": "ana-1", "role": "analyst"}, expect=201)
    secrets = [a.token, op["token"], ana["token"]]

    def check_listing(h):
        _, listing, _ = h.call("GET", "/api/v1/tokens", expect=200)
        raw = json.dumps(listing)
        assert {t["name"] for t in listing["items"]} >= {"bootstrap", "ops-1", "ana-1"}, listing
        for s in secrets:
            assert s not in raw and s.removeprefix("argus_") not in raw
            assert hashlib.sha256(s.encode()).hexdigest() not in raw, "not even the hash"
        for t in listing["items"]:
            assert set(t) <= {"id", "name", "role", "createdAt", "createdBy", "revoked"}, t
        return listing

    check_listing(a)
    check_listing(b)
    assert a.call("GET", "/api/v1/tokens", token=op["token"])[0] == 403   # admins only
    # B verifies (and caches) the operator token; A revokes it.
    b.call("GET", "/api/v1/devices", token=op["token"], expect=200)
    a.call("DELETE", f"/api/v1/tokens/{op['id']}", expect=204)
    revoked = time.monotonic()
    assert a.call("GET", "/api/v1/devices", token=op["token"])[0] == 401   # at once on the revoking node
    wait_for(lambda: b.call("GET", "/api/v1/devices", token=op["token"])[0] == 401, timeout=5 + 1.5,
             what="node B to refuse the revoked token (documented: within 5 s; 1.5 s allowed for the polls)")
    refused_after = time.monotonic() - revoked
    for _ in range(3):
        assert b.call("GET", "/api/v1/devices", token=op["token"])[0] == 401
    b.call("GET", "/api/v1/devices", token=ana["token"], expect=200)   # other tokens unaffected
    listing = check_listing(b)
    assert [t["revoked"] for t in listing["items"] if t["id"] == op["id"]] == [True]
    print(f"revoked token refused on the other node {refused_after:.1f} s after the revocation")


# 5. The device port answers 503 + Retry-After while the registry store is down and while draining.

def test_device_port_answers_503_with_retry_after_while_the_registry_store_is_unavailable(make_hub, private_store):
    database = unique("registry")
    hub = make_hub(uri=private_store.uri(database), database=database, extra_args=["--heartbeat", "30"]).start()
    known = hub.register("reg-known")
    new = hub.register("reg-new")

    async def main():
        ws = await connect_and_hello(hub, "reg-known", known)   # verified once: this node remembers it
        await ws.close()
        await asyncio.to_thread(private_store.stop)
        with pytest.raises(InvalidStatus) as e:
            await connect(hub, "reg-new", new)
        r = e.value.response
        assert r.status_code == 503, (r.status_code, r.body)
        assert int(r.headers["Retry-After"]) > 0
        assert json.loads(r.body)["error"] == "device registry unavailable; retry later"
        # A box this node verified before is let in through the outage.
        ws = await connect_and_hello(hub, "reg-known", known)
        await ws.close()
        await asyncio.to_thread(private_store.start)

        async def attempt():
            try:
                ws = await connect_and_hello(hub, "reg-new", new)
                await ws.close()
                return True
            except InvalidStatus as e:
                assert e.response.status_code == 503, e.response.status_code
                await asyncio.sleep(0.3)
                return False
        deadline = time.monotonic() + 60
        while not await attempt():
            assert time.monotonic() < deadline, "the box was never let in once the store was back"

    try:
        run(main())
    except BaseException:
        print(hub.log_text())
        raise


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


def test_device_port_answers_503_with_retry_after_while_draining(make_hub):
    hub = make_hub(extra_args=["--heartbeat", "30"]).start()
    secret = hub.register("drain-late")
    slow = hub.register("drain-slow")
    # A box that stops reading its socket: the hub's pongs fill the socket buffers, so its close
    # frame (1001) cannot be written and the drain waits for it (up to its 5 s drain timeout).
    # That holds the draining state open long enough to probe it without a race.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", hub.device_port))
    stuck.sendall(raw_upgrade_request("drain-slow", slow))
    status, _, _ = read_http_response(stuck)
    assert status == 101
    before = metric(hub, "argus_gateway_frames_in_total")
    # Enough pongs to overflow the largest send buffer the kernel may give the hub's socket.
    ping_id = "p-" + "0" * 62
    pong_bytes = len(json.dumps({"type": "pong", "ref": ping_id, "serverTime": now_ms()}, separators=(",", ":")))
    max_sndbuf = int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
    pings = (max_sndbuf + (1 << 20)) // pong_bytes
    stuck.sendall(client_frame(hello()) + client_frame(json.dumps({"type": "ping", "id": ping_id})) * pings)
    wait_for(lambda: metric(hub, "argus_gateway_frames_in_total") >= before + pings + 1, timeout=60, what="the hub to read the pings")
    # Sockets accepted before SIGTERM that send their upgrade only once the hub is draining.
    waiting = [socket.create_connection(("127.0.0.1", hub.device_port), timeout=10) for _ in range(2)]
    try:
        # An upgrade before the drain works (the sockets are really in the handshake).
        first = waiting.pop()
        first.sendall(raw_upgrade_request("drain-late", secret))
        status, _, _ = read_http_response(first)
        assert status == 101
        first.close()
        hub.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining device gateway" in hub.log_path.read_text(errors="replace"), timeout=15, what="the drain to start")
        sock = waiting.pop()
        sock.sendall(raw_upgrade_request("drain-late", secret))
        status, headers, body = read_http_response(sock)
        assert status == 503, (status, headers, body)
        assert int(headers["retry-after"]) > 0
        assert json.loads(body)["error"] == "hub shutting down; retry later"
        sock.close()
    finally:
        for s in waiting:
            s.close()
    # The drain ends and the hub exits 0, its slow box and its store's change stream included
    # (it used to crash with SIGSEGV here: the store destroyed its client pool under the
    # change-stream thread, which a slow exit gave time to wake up).
    assert hub.proc.wait(timeout=30) == 0
    stuck.close()


# 6. Acknowledging a cleared alarm returns 409.

def test_acknowledging_a_cleared_alarm_returns_409(make_hub):
    hub = make_hub(extra_args=["--heartbeat", "30", "--alarm-rule", "tempC>80/1"]).start()
    secret = hub.register("al-1")
    key = "tempC>80for1s|al-1"

    def alarm(state):
        _, page, _ = hub.call("GET", f"/api/v1/alarms?state={state}", expect=200)
        return next((x for x in page["items"] if x["key"] == key), None)

    async def send(ws, msgs):
        for m in msgs:
            await ws.send(json.dumps(m))
        await expect_ack(ws, msgs[-1]["seq"])

    async def main():
        t = now_ms()   # the rules run on the box's clock
        ws = await connect_and_hello(hub, "al-1", secret)
        await send(ws, [metrics_msg(2, t, 90), metrics_msg(3, t + 2000, 90)])
        first = await asyncio.to_thread(wait_for, lambda: alarm("raised"), 30, "the alarm to be raised")
        _, acked, _ = await asyncio.to_thread(hub.call, "POST", f"/api/v1/alarms/{first['id']}/ack", None, None, 200)
        assert acked["state"] == "acknowledged" and acked["acknowledgedBy"] == "bootstrap", acked
        _, again, _ = await asyncio.to_thread(hub.call, "POST", f"/api/v1/alarms/{first['id']}/ack", None, None, 200)
        assert again["state"] == "acknowledged"   # twice is harmless
        await send(ws, [metrics_msg(4, t + 3000, 50)])
        await asyncio.to_thread(wait_for, lambda: (alarm("cleared") or {}).get("id") == first["id"], 30, "the alarm to clear")
        # A second alarm that clears without anyone acknowledging it.
        await send(ws, [metrics_msg(5, t + 4000, 95), metrics_msg(6, t + 6000, 95)])
        second = await asyncio.to_thread(wait_for, lambda: alarm("raised"), 30, "the second alarm")
        await send(ws, [metrics_msg(7, t + 7000, 40)])
        await asyncio.to_thread(wait_for, lambda: (lambda c: c if any(x["id"] == second["id"] for x in c) else None)(
            hub.call("GET", "/api/v1/alarms?state=cleared", expect=200)[1]["items"]), 30, "the second alarm to clear")
        await ws.close()
        return first, second

    first, second = run(main())
    assert first["id"] != second["id"]
    for a in (first, second):
        status, body, _ = hub.call("POST", f"/api/v1/alarms/{a['id']}/ack")
        assert status == 409 and "cleared" in body["error"]["message"], (status, body)
    _, cleared, _ = hub.call("GET", "/api/v1/alarms?state=cleared", expect=200)
    assert {x["id"] for x in cleared["items"]} >= {first["id"], second["id"]}   # still cleared
    assert hub.call("POST", "/api/v1/alarms/no-such-alarm/ack")[0] == 404
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=alarm.acknowledge", expect=200)
    assert sorted(x["result"] for x in audit["items"]) == ["already_acknowledged", "cleared", "cleared", "ok"], audit


# 7. expiresInSec and the 30-day deadline maximum on POST /api/v1/commands.

def iso(ms, fraction=False):
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{int(ms % 1000):03d}" if fraction else "") + "Z"


def test_expires_in_sec_and_the_30_day_deadline_maximum_are_enforced(hub):
    hub.register("dl-1")
    target = {"device": "dl-1"}
    now = now_ms()
    refused = [
        ({"expiresInSec": 0}, "expiresInSec must be an integer from 1 to 2592000"),
        ({"expiresInSec": -60}, "expiresInSec must be an integer from 1 to 2592000"),
        ({"expiresInSec": 2_592_001}, "expiresInSec must be an integer from 1 to 2592000"),
        ({"expiresInSec": 1.5}, "expiresInSec must be an integer"),
        ({"expiresInSec": "60"}, "expiresInSec must be an integer"),
        ({"deadline": now + 30 * DAY_MS + 60_000}, "within 30 days"),
        ({"deadline": iso(now + 31 * DAY_MS)}, "within 30 days"),
        ({"deadline": now - 1000}, "passed"),
        ({"deadline": "next tuesday"}, "ISO 8601"),
        ({"deadline": now + 60_000, "expiresInSec": 60}, "not both"),
    ]
    for extra, words in refused:
        s, body, _ = hub.call("POST", "/api/v1/commands", {"name": "reboot", "target": target, **extra})
        assert s == 400 and words in body["error"]["message"], (extra, s, body)
    d = db_of(hub)
    assert d.jobs.count_documents({}) == 0 and d.executions.count_documents({}) == 0
    # The limits themselves are accepted, and the job carries the deadline asked for.
    job = issue(hub, "reboot", target, expiresInSec=2_592_000)
    assert job["deadline"] - job["createdAt"] == 2_592_000_000, job
    near = now_ms() + 30 * DAY_MS - 60_000
    job = issue(hub, "reboot", target, deadline=near)
    assert job["deadline"] == near, job
    at = now_ms() + 29 * DAY_MS
    job = issue(hub, "reboot", target, deadline=iso(at))
    assert job["deadline"] == at // 1000 * 1000, job
    job = issue(hub, "reboot", target)
    assert job["deadline"] - job["createdAt"] == DAY_MS, job   # the default: 24 h
    # A short expiry is enforced: the queued execution of the offline box expires.
    short = issue(hub, "reboot", target, expiresInSec=2)
    assert short["deadline"] - short["createdAt"] == 2000
    e = wait_state(hub, short["id"], "dl-1", {"EXPIRED", "SENT", "SUCCEEDED"}, timeout=30)
    assert e["state"] == "EXPIRED" and e["reason"] == "deadline passed" and history(e) == ["QUEUED", "EXPIRED"], e
    assert e["history"][-1]["at"] >= short["deadline"]
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.create&limit=100", expect=200)
    assert sum(x["result"].startswith("rejected: ") for x in audit["items"]) == len(refused)


def test_a_deadline_in_iso_8601_with_fractional_seconds_is_accepted(hub):
    hub.register("dl-2")
    at = now_ms() + 3_600_000
    job = issue(hub, "reboot", {"device": "dl-2"}, deadline=iso(at, fraction=True))
    assert job["deadline"] == at, job


# 8. The retention TTL indexes exist with the configured values.

def ttl_indexes(db):
    out = {}
    for coll in ("metrics", "events", "logs", "audience"):
        for name, ix in db[coll].index_information().items():
            if "expireAfterSeconds" in ix:
                out[coll] = (ix["key"], int(ix["expireAfterSeconds"]))
    return out


def test_retention_ttl_indexes_have_the_configured_values(make_hub):
    day = 86_400
    default = make_hub(extra_args=["--heartbeat", "30"]).start()
    assert ttl_indexes(db_of(default)) == {
        "metrics": ([("h", 1)], 30 * day), "events": ([("r", 1)], 90 * day), "logs": ([("r", 1)], 14 * day),
        "audience": ([("m", 1)], 400 * day)}
    configured = make_hub(extra_args=["--heartbeat", "30", "--retention-metrics-days", "7", "--retention-events-days", "45",
                                      "--retention-logs-days", "3"]).start()
    assert ttl_indexes(db_of(configured)) == {
        "metrics": ([("h", 1)], 7 * day), "events": ([("r", 1)], 45 * day), "logs": ([("r", 1)], 3 * day),
        "audience": ([("m", 1)], 400 * day)}


def test_changed_retention_flags_update_the_ttl_indexes_on_restart(make_hub):
    day = 86_400
    hub = make_hub(extra_args=["--heartbeat", "30", "--retention-logs-days", "3"]).start()
    assert ttl_indexes(db_of(hub))["logs"][1] == 3 * day
    assert hub.stop() == 0
    i = hub.args.index("--retention-logs-days")
    hub.args[i + 1] = "5"
    hub.args += ["--retention-metrics-days", "9"]
    hub.start(wait_ready=False)
    try:
        hub.wait_ready(timeout=40)
    except AssertionError:
        print(hub.log_text())
        raise
    ix = ttl_indexes(db_of(hub))
    assert ix["logs"][1] == 5 * day and ix["metrics"][1] == 9 * day and ix["events"][1] == 90 * day, ix
