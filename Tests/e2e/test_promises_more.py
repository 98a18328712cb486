"""Documented behaviours that had no end-to-end test (issue 13, item 6), part 2: 503 while the
registry store is down and while draining, alarm acks, deadlines, retention indexes.
"""
import asyncio
import json
import signal
import socket
import time

import pytest
from websockets.exceptions import InvalidStatus

from conftest import hello, wait_for

from helpers import (DAY_MS, client_frame, connect, connect_and_hello, db_of, expect_ack, history, iso, issue, metric, metrics_msg,
                     now_ms, raw_upgrade_request, read_http_response, run, ttl_indexes, unique, wait_state)


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
