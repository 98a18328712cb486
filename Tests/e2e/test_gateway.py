"""The device gateway and the operator API, driven by a Python websockets client."""
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import ROOT, Hub, basic, bin_dir, free_port, hello, wait_for


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def metric(hub, name):
    """The value of an unlabelled metric on the hub's /metrics, or None if it is not there."""
    import re
    _, text, _ = hub.call("GET", "/metrics", token=False, expect=200)
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text if isinstance(text, str) else "", re.M)
    return float(m.group(1)) if m else None


def wait_sockets(hub, n, timeout=10):
    """Waits until the hub counts `n` open device sockets (the gauge follows its sweeper)."""
    wait_for(lambda: metric(hub, "argus_gateway_sockets") == n, timeout=timeout, what=f"{n} open device sockets")


async def connect(hub, device_id, secret, **kw):
    return await websockets.connect(hub.ws_url, additional_headers=basic(device_id, secret), open_timeout=10, **kw)


async def say_hello(ws, **kw):
    await ws.send(hello(**kw))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def test_wrong_missing_or_unknown_credentials_get_401_before_upgrade(hub):
    secret = hub.register("box-auth")

    async def attempt(headers):
        with pytest.raises(InvalidStatus) as e:
            await websockets.connect(hub.ws_url, additional_headers=headers, open_timeout=5)
        return e.value.response

    async def main():
        r = await attempt(basic("box-auth", secret + "x"))
        assert r.status_code == 401
        assert json.loads(r.body)["error"] == "missing or wrong device credentials"
        assert (await attempt({})).status_code == 401
        assert (await attempt(basic("no-such-box", secret))).status_code == 401
        assert (await attempt({"Authorization": "Basic !!!"})).status_code == 401

    run(main())


def test_right_secret_gets_welcome_and_box_shows_online_then_offline_with_last_seen(hub):
    secret = hub.register("box-1", tags=["lab"])

    async def main():
        ws = await connect(hub, "box-1", secret)
        w = await say_hello(ws, boot="b-42", firmware="2.1.0")
        assert w["type"] == "welcome" and w["ref"] == "h-1" and w["protocol"] == 1
        assert w["heartbeatSec"] == 1 and w["limits"]["maxFrameBytes"] == 65536
        assert abs(w["serverTime"] - time.time() * 1000) < 60_000
        d = hub.wait_device("box-1", lambda d: d["online"])
        assert d["firmware"] == "2.1.0" and d["bootId"] == "b-42" and d["session"] == w["session"]
        assert d["remoteAddress"] == "127.0.0.1" and d["node"] == w["node"]
        assert "secretHash" not in d
        await ws.send(json.dumps({"type": "ping", "id": "p-1"}))
        pong = json.loads(await ws.recv())
        assert pong == {"type": "pong", "ref": "p-1", "serverTime": pong["serverTime"]}
        await ws.close()
        d = hub.wait_device("box-1", lambda d: not d["online"])
        assert d["lastSeen"]

    run(main())


def test_duplicate_connection_replaces_the_first_with_4000(hub):
    secret = hub.register("box-dup")
    witness_secret = hub.register("box-dup-witness")

    async def main():
        first = await connect(hub, "box-dup", secret)
        await say_hello(first, boot="one")
        second = await connect(hub, "box-dup", secret)
        w2 = await say_hello(second, boot="two")
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(first.recv(), 5)
        assert e.value.rcvd.code == 4000
        assert e.value.rcvd.reason == "replaced by a newer connection"
        # The replaced session's disconnect must not mark the box offline. Rather than sleep,
        # wait until the hub has let go of the first socket (its disconnect is handled), then
        # for a later presence change of another box to reach the store: presence changes are
        # written in order, so by then anything the disconnect submitted is written too.
        await asyncio.to_thread(wait_sockets, hub, 1)
        witness = await connect(hub, "box-dup-witness", witness_secret)
        await say_hello(witness)
        await asyncio.to_thread(hub.wait_device, "box-dup-witness", lambda x: x["online"])
        d = hub.device("box-dup")
        assert d["online"] and d["session"] == w2["session"] and d["bootId"] == "two"
        await witness.close()
        await second.close()

    run(main())


def test_bad_frames_get_error_frames_and_do_not_affect_other_boxes(hub):
    s1, s2 = hub.register("box-bad"), hub.register("box-good")

    async def main():
        bad = await connect(hub, "box-bad", s1, max_size=None)
        good = await connect(hub, "box-good", s2)
        await say_hello(bad)
        await say_hello(good)
        cases = [
            ("{not json", "invalid_json"),
            (b"\x00\x01", "binary_not_supported"),
            (json.dumps({"type": "teleport", "id": "t-1"}), "unknown_type"),
            (json.dumps({"type": "hello", "id": "h-2", "model": "m", "firmware": "f", "bootId": "b"}), "duplicate_hello"),
            ("x" * 70_000, "frame_too_large"),
            (json.dumps({"type": "ping", "id": 5}), "invalid_field"),
        ]
        for frame, code in cases:
            await bad.send(frame)
            e = json.loads(await asyncio.wait_for(bad.recv(), 5))
            assert e["type"] == "error" and e["code"] == code, (frame[:40], e)
            assert e["reason"]
        # Still connected, and the other box is untouched.
        await bad.send(json.dumps({"type": "ping", "id": "still"}))
        assert json.loads(await bad.recv())["ref"] == "still"
        await good.send(json.dumps({"type": "ping", "id": "fine"}))
        assert json.loads(await good.recv())["ref"] == "fine"
        # A frame over the hard limit (4 x maxFrameBytes) closes with 1009.
        await bad.send("y" * 300_000)
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(bad.recv(), 5)
        assert e.value.rcvd.code == 1009
        await good.send(json.dumps({"type": "ping", "id": "after"}))
        assert json.loads(await good.recv())["ref"] == "after"
        await good.close()

    run(main())


def test_message_before_hello_closes_with_4003(hub):
    secret = hub.register("box-nohello")

    async def main():
        ws = await connect(hub, "box-nohello", secret)
        await ws.send(json.dumps({"type": "ping", "id": "p-0"}))
        err = json.loads(await ws.recv())
        assert err["code"] == "hello_required" and err["ref"] == "p-0"
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(ws.recv(), 5)
        assert e.value.rcvd.code == 4003

    run(main())


def test_a_box_that_never_says_hello_is_closed_within_the_documented_10_s(make_hub):
    # A long heartbeat makes the sweeper slow (every 20 s): the hello deadline must not wait for it.
    hub = make_hub(extra_args=["--heartbeat", "60"]).start()
    secret = hub.register("box-mute")

    async def main():
        ws = await connect(hub, "box-mute", secret)
        opened = time.monotonic()
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(ws.recv(), 14)  # 10 s plus slack; the sweeper alone took 20-40 s
        assert e.value.rcvd.code == 4003
        assert time.monotonic() - opened >= 9.5  # not before the deadline either

    run(main())


def test_silent_box_is_pinged_then_closed_with_4002_while_a_ponging_box_stays(make_hub):
    hub = make_hub(extra_args=["--heartbeat", "1", "--idle-timeout", "2"]).start()
    secret = hub.register("box-silent")
    s2 = hub.register("box-alive")

    # A raw client that completes the handshake and hello, then never answers pings.
    sock = socket.create_connection(("127.0.0.1", hub.device_port))
    key = base64.b64encode(os.urandom(16)).decode()
    auth = base64.b64encode(f"box-silent:{secret}".encode()).decode()
    sock.sendall((f"GET /v1/stb HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Basic {auth}\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101"), buf
    buf = buf.split(b"\r\n\r\n", 1)[1]
    payload = hello().encode()
    mask = os.urandom(4)
    header = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big")
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def alive():
        ws = await connect(hub, "box-alive", s2)  # websockets answers pings by itself
        await say_hello(ws)
        await asyncio.sleep(4)
        await ws.send(json.dumps({"type": "ping", "id": "late"}))
        assert json.loads(await ws.recv())["ref"] == "late"
        await ws.close()

    run(alive())
    sock.settimeout(5)
    opcodes, close_code = [], None
    deadline = time.time() + 8
    while time.time() < deadline and close_code is None:
        while len(buf) < 2:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        if len(buf) < 2:
            break
        op, n, start = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            while len(buf) < 4:
                buf += sock.recv(4096)
            n, start = int.from_bytes(buf[2:4], "big"), 4
        while len(buf) < start + n:
            buf += sock.recv(4096)
        body, buf = buf[start:start + n], buf[start + n:]
        opcodes.append(op)
        if op == 0x8:
            close_code = int.from_bytes(body[:2], "big")
    sock.close()
    assert 0x9 in opcodes, f"expected a ping before the close, got opcodes {opcodes}"
    assert close_code == 4002


def test_revoking_a_box_disconnects_it_with_4001_and_refuses_it_after(hub):
    secret = hub.register("box-rev")

    async def main():
        ws = await connect(hub, "box-rev", secret)
        await say_hello(ws)
        hub.call("POST", "/api/v1/devices/box-rev/revoke", expect=204)
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(ws.recv(), 5)
        assert e.value.rcvd.code == 4001
        with pytest.raises(InvalidStatus) as e2:
            await connect(hub, "box-rev", secret)
        assert e2.value.response.status_code == 401

    run(main())
    assert hub.device("box-rev")["revoked"] is True


def test_operator_api_requires_a_token_and_checks_roles(hub):
    status, body, headers = hub.call("GET", "/api/v1/devices", token=False)
    assert status == 401 and "token" in body["error"]["message"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert hub.call("GET", "/api/v1/devices", token="argus_not-a-real-token")[0] == 401

    _, analyst, _ = hub.call("POST", "/api/v1/tokens", {"name": "ana", "role": "viewer"}, expect=201)
    _, op, _ = hub.call("POST", "/api/v1/tokens", {"name": "opa", "role": "operator"}, expect=201)
    assert analyst["token"].startswith("argus_") and analyst["role"] == "viewer"
    # Viewers read the fleet, but every write route refuses them (every role: test_access.py).
    hub.call("GET", "/api/v1/devices", token=analyst["token"], expect=200)
    status, body, _ = hub.call("POST", "/api/v1/devices", {"id": "x1", "model": "m"}, token=analyst["token"])
    assert status == 403 and "operator" in body["error"]["message"]
    assert hub.call("POST", "/api/v1/tokens", {"name": "n", "role": "admin"}, token=analyst["token"])[0] == 403
    assert hub.call("POST", "/api/v1/devices/x1/revoke", token=analyst["token"])[0] == 403
    # Operators register boxes but cannot mint tokens or read the audit log.
    hub.call("POST", "/api/v1/devices", {"id": "x1", "model": "m"}, token=op["token"], expect=201)
    assert hub.call("POST", "/api/v1/tokens", {"name": "n", "role": "admin"}, token=op["token"])[0] == 403
    assert hub.call("GET", "/api/v1/audit", token=op["token"])[0] == 403
    # A registration the route refuses (the box exists): 409.
    assert hub.call("POST", "/api/v1/devices", {"id": "x1", "model": "m"}, token=op["token"])[0] == 409
    # A revoked token stops working at once.
    hub.call("DELETE", f"/api/v1/tokens/{op['id']}", expect=204)
    assert hub.call("GET", "/api/v1/devices", token=op["token"])[0] == 401
    # Every action was audited, refused ones included where they reached a route.
    _, audit, _ = hub.call("GET", "/api/v1/audit?limit=50", expect=200)
    actions = [(a["action"], a["actor"], a["result"]) for a in audit["items"]]
    assert ("device.register", "opa", "ok") in actions
    assert ("device.register", "opa", "conflict") in actions, actions
    assert ("token.create", "bootstrap", "ok") in actions
    assert ("token.revoke", "bootstrap", "ok") in actions
    # No route edits or deletes the audit log.
    assert hub.call("DELETE", "/api/v1/audit")[0] in (404, 405)


def test_registration_validation_and_listing_with_filters_and_pagination(hub):
    for bad, why in [({"model": "m"}, "missing field id"), ({"id": "a b", "model": "m"}, "id must be"),
                     ({"id": "ok", "model": 3}, "wrong type for model"), ({"id": "ok", "model": "m", "tags": ["x" * 40]}, "tags[]")]:
        status, body, _ = hub.call("POST", "/api/v1/devices", bad)
        assert status == 400 and why in body["error"]["message"], (bad, body)
    assert hub.call("GET", "/api/v1/devices?limit=0")[0] == 400
    assert hub.call("GET", "/api/v1/devices?online=maybe")[0] == 400
    for i in range(5):
        hub.register(f"pg-{i}", model="m-a" if i % 2 else "m-b", tags=["odd"] if i % 2 else [])
    status, body, _ = hub.call("POST", "/api/v1/devices", {"id": "pg-0", "model": "m"})
    assert status == 409
    _, page1, _ = hub.call("GET", "/api/v1/devices?limit=2", expect=200)
    assert [d["id"] for d in page1["items"]] == ["pg-0", "pg-1"] and page1["nextCursor"] == "pg-1"
    _, page2, _ = hub.call("GET", "/api/v1/devices?limit=2&cursor=pg-1", expect=200)
    assert [d["id"] for d in page2["items"]] == ["pg-2", "pg-3"]
    _, page3, _ = hub.call("GET", "/api/v1/devices?limit=2&cursor=pg-3", expect=200)
    assert [d["id"] for d in page3["items"]] == ["pg-4"] and page3.get("nextCursor") is None
    _, odd, _ = hub.call("GET", "/api/v1/devices?tag=odd&model=m-a&online=false", expect=200)
    assert [d["id"] for d in odd["items"]] == ["pg-1", "pg-3"]
    assert hub.call("GET", "/api/v1/devices/nope")[0] == 404


def test_sigterm_drains_with_1001_marks_boxes_offline_and_exits_0(hub):
    secrets = {f"drain-{i}": hub.register(f"drain-{i}") for i in range(3)}

    async def main():
        conns = []
        for dev, sec in secrets.items():
            ws = await connect(hub, dev, sec)
            await say_hello(ws)
            conns.append(ws)
        hub.wait_device("drain-2", lambda d: d["online"])
        hub.proc.send_signal(signal.SIGTERM)
        codes = []
        for ws in conns:
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), 10)
            codes.append(e.value.rcvd.code)
        assert codes == [1001, 1001, 1001]

    run(main())
    assert hub.proc.wait(timeout=15) == 0
    import pymongo
    docs = list(pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database].devices.find({}))
    assert len(docs) == 3 and all(not d["online"] and d.get("lastSeen") for d in docs)


def test_over_capacity_gets_503_with_retry_after_and_the_hub_stays_up(make_hub):
    hub = make_hub(extra_args=["--heartbeat", "5", "--max-connections", "2"]).start()
    secrets = [hub.register(f"cap-{i}") for i in range(3)]

    async def main():
        a = await connect(hub, "cap-0", secrets[0])
        b = await connect(hub, "cap-1", secrets[1])
        await say_hello(a)
        await say_hello(b)
        with pytest.raises(InvalidStatus) as e:
            await connect(hub, "cap-2", secrets[2])
        assert e.value.response.status_code == 503
        assert int(e.value.response.headers["Retry-After"]) > 0
        await a.close()
        await asyncio.to_thread(wait_sockets, hub, 1)  # the hub has released a's slot
        c = await connect(hub, "cap-2", secrets[2])  # a freed slot is usable again
        assert (await say_hello(c))["type"] == "welcome"
        await b.close()
        await c.close()

    run(main())
    assert hub.proc.poll() is None
    hub.call("GET", "/healthz", token=False, expect=200)


def test_wrong_path_and_plain_http_are_refused(hub):
    import urllib.request, urllib.error
    for path, code in [("/v1/stb", 426), ("/other", 404)]:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{hub.device_port}{path}", timeout=5)
            raise AssertionError("expected an error status")
        except urllib.error.HTTPError as e:
            assert e.code == code


def test_store_down_at_start_is_retried_with_backoff_then_the_hub_comes_up(make_hub, tmpdir_path):
    port = free_port()
    uri = f"mongodb://127.0.0.1:{port}/late?directConnection=true&serverSelectionTimeoutMS=500"
    hub = make_hub(uri=uri).start(wait_ready=False)
    try:
        deadline = time.time() + 10
        while "store not reachable; retrying" not in hub.log_text() or hub.log_text().count("retrying") < 2:
            assert hub.proc.poll() is None, hub.log_text()
            assert time.time() < deadline, hub.log_text()
            time.sleep(0.2)
        status, body, _ = hub.call("GET", "/healthz", token=False)
        assert status == 503 and body["status"] == "starting"
        subprocess.run([str(ROOT / "scripts/store"), "start", "--port", str(port), "--dir", str(tmpdir_path / "late")], check=True,
                       stdout=subprocess.DEVNULL)
        hub.wait_ready(timeout=40)
        assert "store ready" in hub.log_text()
    finally:
        hub.stop()
        subprocess.run([str(ROOT / "scripts/store"), "stop", "--dir", str(tmpdir_path / "late")], stdout=subprocess.DEVNULL)


@pytest.mark.parametrize("args,needle", [
    (["--api-port", "70000"], "--api-port must be from 0 to 65535"),
    (["--heartbeat", "0"], "--heartbeat must be from 1 to 3600"),
    (["--no-such-flag"], "Unknown option"),
    (["--mongodb-uri", "mongodb://host:notaport/"], "malformed MongoDB URI"),
])
def test_bad_flags_exit_2_with_a_clear_message(args, needle):
    p = subprocess.run([str(bin_dir() / "argus-hub"), *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr + p.stdout


def test_every_metric_the_grafana_dashboard_reads_is_exported(hub):
    import re
    names = {n for n in re.findall(r"argus_[a-z_]+", (ROOT / "dashboards/grafana/argus-hub.json").read_text()) if not n.endswith("_")}
    assert len(names) >= 10
    deadline = time.time() + 10
    while True:
        status, text, _ = hub.call("GET", "/metrics", token=False)
        exported = set(re.findall(r"^(argus_[a-z_]+)", text if isinstance(text, str) else "", re.M))
        if names <= exported or time.time() > deadline:
            break
        time.sleep(0.5)
    assert status == 200
    assert names <= exported, f"not exported: {sorted(names - exported)}"
