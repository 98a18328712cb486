"""The review's defects (issue 13, items 1-3): firmware images that stay intact, an operator
API port with limits, and refusals that are audited. Each test failed on the hub before the
fix it names."""
import asyncio
import hashlib
import http.client
import json
import os
import signal
import socket
import threading
import time

import pymongo
import pytest
import websockets

from conftest import basic, hello, wait_for

MB = 1_000_000


def image(size, seed=1):
    # Cheap deterministic bytes that do not compress to one repeated chunk.
    block = hashlib.sha256(str(seed).encode()).digest() * (65536 // 32)
    return (block * (size // len(block) + 1))[:size]


def add_firmware(hub, version, data, models=("argus-sim-1",)):
    hub.call("POST", "/api/v1/firmware", {"version": version, "models": list(models), "size": len(data),
                                           "sha256": hashlib.sha256(data).hexdigest()}, expect=201)


def put_image(hub, version, data, pace=None, chunk=64 * 1024, timeout=60):
    """PUTs an image; with `pace` (seconds between 64 KiB pieces) the body is sent slowly."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.api_port, timeout=timeout)
    conn.putrequest("PUT", f"/api/v1/firmware/{version}/image")
    conn.putheader("Authorization", f"Bearer {hub.token}")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    try:
        for i in range(0, len(data), chunk):
            conn.send(data[i:i + chunk])
            if pace:
                time.sleep(pace)
        r = conn.getresponse()
        body = r.read()
        return r.status, (json.loads(body) if body else None), r
    finally:
        conn.close()


def download(hub, version, range_header=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", hub.api_port, timeout=timeout)
    headers = {"Range": range_header} if range_header else {}
    conn.request("GET", f"/firmware/{version}", headers=headers)
    r = conn.getresponse()
    body = r.read()  # raises IncompleteRead on a short body; times out on a hang
    conn.close()
    return r.status, body, r


def mongo(hub):
    return pymongo.MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=5000)[hub.database]


def audit(hub, **q):
    query = "&".join(f"{k}={v}" for k, v in q.items())
    return hub.call("GET", f"/api/v1/audit?limit=200&{query}", expect=200)[1]["items"]


# --- 1. Firmware images that stay intact -------------------------------------------------

def test_rejected_reupload_keeps_the_verified_image(hub):
    data = image(600_000)
    add_firmware(hub, "2.0.0", data)
    status, rec, _ = put_image(hub, "2.0.0", data)
    assert status == 200 and rec["status"] == "available"
    status, err, _ = put_image(hub, "2.0.0", b"garbage")
    assert status == 400, err
    assert "unchanged" in err["error"]["message"]
    rec = hub.call("GET", "/api/v1/firmware/2.0.0", expect=200)[1]
    assert rec["status"] == "available" and rec["uploaded"]
    status, body, r = download(hub, "2.0.0")
    assert status == 200 and len(body) == len(data) and hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    status, body, r = download(hub, "2.0.0", "bytes=300000-300099")
    assert status == 206 and body == data[300000:300100]
    # A firmware job for it is still accepted, and the refusal was audited.
    secret = hub.register("stb-fw1")
    hub.call("POST", "/api/v1/commands", {"name": "firmware_update", "params": {"version": "2.0.0"},
                                          "target": {"device": "stb-fw1"}}, expect=201)
    uploads = audit(hub, action="firmware.upload")
    assert any(e["result"].startswith("rejected:") for e in uploads), uploads
    assert any(e["result"] == "ok" for e in uploads)
    assert secret


def test_concurrent_uploads_one_wins_the_other_gets_409(hub):
    data = image(5 * MB, seed=2)
    add_firmware(hub, "3.0.0", data)
    results = {}

    def slow():
        results["slow"] = put_image(hub, "3.0.0", data, pace=0.01)

    t = threading.Thread(target=slow)
    t.start()
    # Wait until the slow upload holds the claim, then try a second one.
    wait_for(lambda: mongo(hub)["firmware"].find_one({"_id": "3.0.0", "uploading": {"$exists": True}}), timeout=20,
             what="the first upload to claim the image")
    # The hub answers the second upload at once, before its body: send the headers and read.
    s = socket.create_connection(("127.0.0.1", hub.api_port), timeout=20)
    s.sendall((f"PUT /api/v1/firmware/3.0.0/image HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hub.token}\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode())
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 409"), reply[:300]
    assert b"retry-after:" in head.lower()
    assert "in progress" in json.loads(body)["error"]["message"]
    t.join(timeout=120)
    assert results["slow"][0] == 200, results["slow"]
    status, body, _ = download(hub, "3.0.0", timeout=30)
    assert status == 200 and hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    status, body, _ = download(hub, "3.0.0", "bytes=0-99")
    assert status == 206 and body == data[:100]
    refused = [e for e in audit(hub, action="firmware.upload") if e["result"].startswith("rejected:")]
    assert refused and "in progress" in refused[0]["result"]


def test_kill_during_upload_leaves_the_old_image_served(hub):
    data = image(2 * MB, seed=3)
    add_firmware(hub, "4.0.0", data)
    assert put_image(hub, "4.0.0", data)[0] == 200

    def doomed():
        try:
            put_image(hub, "4.0.0", image(2 * MB, seed=4), pace=0.02, timeout=10)
        except Exception:
            pass

    t = threading.Thread(target=doomed)
    t.start()
    db = mongo(hub)
    served = db["firmware"].find_one({"_id": "4.0.0"})["generation"]
    # Some of the new generation is stored, then the hub dies.
    wait_for(lambda: db["firmware_image_chunks"].count_documents({"fw": "4.0.0", "gen": {"$ne": served}}) >= 2, timeout=30,
             what="the second upload to store chunks")
    hub.stop(signal.SIGKILL)
    t.join(timeout=30)
    hub.start()
    rec = hub.call("GET", "/api/v1/firmware/4.0.0", expect=200)[1]
    assert rec["status"] == "available" and rec["generation"] == served
    status, body, _ = download(hub, "4.0.0")
    assert status == 200 and body == data


def test_a_missing_chunk_fails_fast_and_marks_the_image_unavailable(hub):
    data = image(1 * MB, seed=5)
    add_firmware(hub, "5.0.0", data)
    assert put_image(hub, "5.0.0", data)[0] == 200
    db = mongo(hub)
    assert db["firmware_image_chunks"].delete_one({"fw": "5.0.0", "n": 2}).deleted_count == 1
    t0 = time.time()
    status, body, _ = download(hub, "5.0.0", timeout=10)
    assert status == 503, body
    assert "missing" in json.loads(body)["error"]["message"]
    # A range that needs only intact chunks is refused too: the entry is now unavailable.
    status, _, _ = download(hub, "5.0.0", "bytes=0-10", timeout=10)
    assert status == 503
    assert time.time() - t0 < 20  # bounded: a hang would have hit the client's timeout
    rec = hub.call("GET", "/api/v1/firmware/5.0.0", expect=200)[1]
    assert rec["status"] == "unavailable" and "missing" in rec["problem"]
    hub.register("stb-fw5")
    status, err, _ = hub.call("POST", "/api/v1/commands", {"name": "firmware_update", "params": {"version": "5.0.0"},
                                                           "target": {"device": "stb-fw5"}})
    assert status == 400 and "unavailable" in err["error"]["message"]
    # Uploading it again mends it.
    assert put_image(hub, "5.0.0", data)[0] == 200
    status, body, _ = download(hub, "5.0.0")
    assert status == 200 and body == data


# --- 2. An operator API port with limits ---------------------------------------------------

@pytest.fixture
def limited_hub(make_hub):
    return make_hub(extra_args=["--heartbeat", "1", "--api-header-timeout", "2", "--api-idle-timeout", "3",
                                "--api-max-connections", "40"]).start()


def closed_by_peer(s, deadline):
    """True once the peer closed `s` (EOF or reset) before `deadline`."""
    s.settimeout(max(0.05, deadline - time.time()))
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_slowloris_and_idle_sockets_are_closed_while_a_real_client_is_served(limited_hub):
    hub = limited_hub
    slow = []
    for _ in range(15):
        s = socket.create_connection(("127.0.0.1", hub.api_port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    idle = [socket.create_connection(("127.0.0.1", hub.api_port)) for _ in range(15)]
    opened = time.time()
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b"X-a: b\r\n")
                except OSError:
                    pass
            time.sleep(0.5)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        # A real client is served meanwhile.
        status, body, headers = hub.call("GET", "/api/v1/devices", expect=200)
        deadline = opened + 2 + 5  # the header timeout plus slack for a loaded machine
        assert all(closed_by_peer(s, deadline) for s in slow + idle)
    finally:
        stop.set()
        for s in slow + idle:
            s.close()
    # A slow socket was told why.
    s = socket.create_connection(("127.0.0.1", hub.api_port))
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    s.settimeout(10)
    reply = s.recv(4096)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply
    # A keep-alive connection left idle after a response is closed after the idle timeout.
    conn = http.client.HTTPConnection("127.0.0.1", hub.api_port, timeout=10)
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    assert closed_by_peer(conn.sock, time.time() + 3 + 5)
    conn.close()
    metrics = hub.call("GET", "/metrics", token=False, expect=200)[1]
    assert 'argus_api_connections_closed_total{reason="header_timeout"}' in metrics
    assert 'argus_api_connections_closed_total{reason="idle_timeout"}' in metrics


def test_oversized_headers_get_431(hub):
    s = socket.create_connection(("127.0.0.1", hub.api_port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 90_000 + b"\r\n\r\n")
    s.settimeout(10)
    reply = b""
    try:
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    except ConnectionResetError:
        pass
    s.close()
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    # And the hub still serves.
    hub.call("GET", "/api/v1/devices", expect=200)


def test_api_connections_past_the_cap_get_503(make_hub):
    hub = make_hub(extra_args=["--api-max-connections", "5", "--api-header-timeout", "30"]).start()
    # Open connections one at a time: each is either admitted (the hub says nothing: the
    # header deadline is 30 s) or told 503 at once. Exactly the cap is admitted.
    held, reply = [], None
    try:
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", hub.api_port))
            s.settimeout(3)
            try:
                r = s.recv(4096)
            except socket.timeout:
                held.append(s)  # admitted: waiting for our request's headers
                continue
            s.close()
            assert r.startswith(b"HTTP/1.1 503"), r[:200]
            reply = r
            break
        assert reply is not None and len(held) == 5, (len(held), reply)
        assert b"Retry-After:" in reply
    finally:
        for s in held:
            s.close()
    # Once they are gone, the API serves again.
    wait_for(lambda: hub.call("GET", "/api/v1/devices")[0] == 200, timeout=10, what="the API to serve again")
    metrics = hub.call("GET", "/metrics", token=False, expect=200)[1]
    assert 'argus_api_connections_closed_total{reason="capacity"}' in metrics


def test_every_response_says_nosniff_and_no_store(hub):
    for method, path, body, token in [("GET", "/healthz", None, False), ("GET", "/api/v1/devices", None, None),
                                       ("GET", "/api/v1/devices", None, "bad-token"),
                                       ("POST", "/api/v1/tokens", {"name": "t1", "role": "analyst"}, None),
                                       ("POST", "/api/v1/devices", {"id": "stb-h1", "model": "m"}, None),
                                       ("GET", "/api/v1/devices/nope", None, None)]:
        status, _, headers = hub.call(method, path, body, token=token)
        assert headers.get("X-Content-Type-Options") == "nosniff", (method, path, status)
        assert headers.get("Cache-Control") == "no-store", (method, path, status)


# --- 3. Refusals are audited -------------------------------------------------------------------

def test_refusals_are_audited_and_401s_counted_not_audited(hub):
    _, op, _ = hub.call("POST", "/api/v1/tokens", {"name": "ops", "role": "operator"}, expect=201)
    # An operator asking for an admin token: 403, audited.
    status, _, _ = hub.call("POST", "/api/v1/tokens", {"name": "x", "role": "admin"}, token=op["token"])
    assert status == 403
    # 400s on device registration and firmware registration, audited with the reason.
    assert hub.call("POST", "/api/v1/devices", {"id": "bad id!", "model": "m"})[0] == 400
    assert hub.call("POST", "/api/v1/firmware", {"version": "9.9.9", "size": 10})[0] == 400
    # Duplicate keys are refused on /devices as on /commands.
    req = http.client.HTTPConnection("127.0.0.1", hub.api_port, timeout=10)
    req.request("POST", "/api/v1/devices", body=b'{"id":"stb-d1","id":"stb-d2","model":"m"}',
                headers={"Authorization": f"Bearer {hub.token}", "Content-Type": "application/json"})
    r = req.getresponse()
    dup = json.loads(r.read())
    assert r.status == 400 and "duplicate" in dup["error"]["message"], dup
    assert hub.call("GET", "/api/v1/devices/stb-d1")[0] == 404
    # Bad tokens: counted, never audited.
    for _ in range(20):
        assert hub.call("POST", "/api/v1/devices", {"id": "stb-x", "model": "m"}, token="nope")[0] == 401
    entries = audit(hub, action="api.refused")
    results = [(e["actor"], e["target"], e["result"]) for e in entries]
    assert any(a == "ops" and t == "/api/v1/tokens" and r.startswith("refused 403") for a, t, r in results), results
    assert any(t == "/api/v1/devices" and r.startswith("refused 400") and "id must be" in r for a, t, r in results), results
    # Firmware registration audits its own refusals, with the reason.
    fw = audit(hub, action="firmware.add")
    assert any(e["result"].startswith("rejected:") and "sha256 is required" in e["result"] for e in fw), fw
    assert any(t == "/api/v1/devices" and "duplicate" in r for a, t, r in results), results
    assert all(e["actor"] in ("bootstrap", "ops") for e in entries), entries
    assert len([e for e in audit(hub) if e["target"] == "/api/v1/devices" and e["result"].startswith("refused 401")]) == 0
    metrics = hub.call("GET", "/metrics", token=False, expect=200)[1]
    line = next(l for l in metrics.splitlines() if l.startswith("argus_api_unauthorized_total"))
    assert float(line.split()[-1]) >= 20
    # The bad tokens were logged, but not once per request.
    log = hub.log_path.read_text(errors="replace")
    assert 1 <= log.count("no valid token") < 20


def test_an_audit_entry_is_bounded(hub):
    huge = "c" * 60_000
    status, err, _ = hub.call("POST", "/api/v1/commands", {"name": huge, "target": {"device": "stb-1"}})
    assert status == 400
    db = mongo(hub)
    entry = db["audit"].find_one({"action": "command.create"}, sort=[("at", -1)])
    size = len(json.dumps(entry, default=str))
    assert size < 30_000, size
    assert "bytes]" in json.dumps(entry, default=str)


def test_hello_cannot_report_a_model_the_api_would_refuse(hub):
    secret = hub.register("stb-hm")

    async def go():
        async with websockets.connect(hub.ws_url, additional_headers=basic("stb-hm", secret)) as ws:
            await ws.send(hello(model="<img src=x onerror=alert(1)>"))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "error" and reply["code"] == "invalid_field" and reply["field"] == "model", reply
            await ws.send(hello(firmware="1.0 beta"))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["code"] == "invalid_field" and reply["field"] == "firmware", reply
            await ws.send(hello())
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "welcome", reply
            # Still connected while presence is checked (once it leaves, the box shows offline).
            return await asyncio.to_thread(hub.wait_device, "stb-hm", lambda d: d.get("online"))

    d = asyncio.run(go())
    assert d["model"] == "argus-sim-1"
