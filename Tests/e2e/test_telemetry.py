"""Telemetry end to end: acknowledgement after durability, storage exactly once, the API,
and a store outage with a hub restart in the middle of a streaming fleet."""
import asyncio
import json
import os
import random
import signal
import subprocess
import time

import pymongo
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from conftest import wait_for, ROOT, Hub, basic, free_port, hello


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


def now_ms():
    return int(time.time() * 1000)


def metrics(seq, ts=None):
    return {"type": "metrics", "seq": seq, "ts": ts or now_ms(), "cpu": 12.5, "mem": 40.0, "tempC": 50.0 + seq % 5,
            "uptimeSec": 100 + seq, "rttMs": 9.0, "bitrateKbps": 8000, "underruns": 0, "droppedFrames": seq % 3}


def event(seq, kind="tune", channel="bbc-one.uk", ts=None, **kw):
    return {"type": "event", "seq": seq, "ts": ts or now_ms(), "event": kind, "channel": channel, **kw}


def log(seq, text="hello", level="info", ts=None):
    return {"type": "log", "seq": seq, "ts": ts or now_ms(), "level": level, "source": "e2e", "text": text}


async def expect_ack(ws, up_to, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if m["type"] == "ack" and m["upTo"] >= up_to:
            return m
        assert m["type"] == "ack", m
    raise AssertionError(f"no ack up to {up_to}")


def db(hub):
    return pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]


def test_telemetry_is_acked_stored_once_even_when_resent_and_served_by_the_api(hub):
    secret = hub.register("tel-1")

    # Distinct times, a second apart in seq order (within the last minute): newest first and
    # the latest sample are then well defined.
    t0 = now_ms() - 60_000

    async def main():
        frames = [metrics(1, ts=t0 + 1000), event(2, ts=t0 + 2000), log(3, "first line", ts=t0 + 3000),
                  {"type": "batch", "id": "b1", "messages": [event(4, "play_error", code="E_DECODE", ts=t0 + 4000),
                                                             log(5, "second", "error", ts=t0 + 5000), metrics(6, ts=t0 + 6000)]}]
        ws = await websockets.connect(hub.ws_url, additional_headers=basic("tel-1", secret))
        await ws.send(hello(boot="boot-A"))
        assert json.loads(await ws.recv())["type"] == "welcome"
        for f in frames:
            await ws.send(json.dumps(f))
            last = f["seq"] if "seq" in f else max(m["seq"] for m in f["messages"])
            assert (await expect_ack(ws, last))["upTo"] == last
        await ws.close()
        # A reconnect resends everything (as if the acks were lost): stored once all the same.
        ws = await websockets.connect(hub.ws_url, additional_headers=basic("tel-1", secret))
        await ws.send(hello(boot="boot-A"))
        await ws.recv()
        for f in frames:
            await ws.send(json.dumps(f))
        await expect_ack(ws, 6)
        await ws.close()

    run(main())
    d = db(hub)
    try:
        wait_for(lambda: d.events.count_documents({}) == 2 and d.logs.count_documents({}) == 2
                 and sum(len(b["samples"]) for b in d.metrics.find()) == 2, what="telemetry in the store")
    except AssertionError:
        print("events", list(d.events.find()), "logs", list(d.logs.find()), "metrics", list(d.metrics.find()))
        print(hub.log_text())
        raise
    time.sleep(1.5)  # a second pass of the applier must not add duplicates
    assert d.events.count_documents({}) == 2 and d.logs.count_documents({}) == 2
    assert sum(len(b["samples"]) for b in d.metrics.find()) == 2
    assert sorted(e["_id"] for e in d.events.find()) == ["tel-1|boot-A|2", "tel-1|boot-A|4"]

    _, evs, _ = hub.call("GET", "/api/v1/devices/tel-1/events", expect=200)
    assert [(e["seq"], e["event"]) for e in evs["items"]] == [(4, "play_error"), (2, "tune")]  # newest first
    _, logs, _ = hub.call("GET", "/api/v1/devices/tel-1/logs?level=error", expect=200)
    assert [l["text"] for l in logs["items"]] == ["second"]
    _, series, _ = hub.call("GET", "/api/v1/devices/tel-1/metrics?step=3600", expect=200)
    assert series["latest"]["values"]["uptimeSec"] == 106  # metrics(6), the later sample
    assert sum(p["samples"] for p in series["points"]) == 2
    _, summary, _ = hub.call("GET", "/api/v1/fleet/summary", expect=200)
    assert summary["total"] == 1 and summary["byModel"] == {"argus-sim-1": 1}
    assert summary["health"]["tempC"]["count"] == 1
    for bad in ["/api/v1/devices/tel-1/metrics?from=yesterday", "/api/v1/devices/tel-1/metrics?step=0",
                "/api/v1/devices/tel-1/logs?level=loud", "/api/v1/devices/tel-1/events?from=2000&to=1000"]:
        assert hub.call("GET", bad)[0] == 400, bad


def test_invalid_telemetry_is_refused_with_the_field_and_not_acked(hub):
    secret = hub.register("tel-bad")

    async def main():
        ws = await websockets.connect(hub.ws_url, additional_headers=basic("tel-bad", secret))
        await ws.send(hello())
        await ws.recv()
        await ws.send(json.dumps({"type": "batch", "id": "b-x", "messages": [log(1), {**metrics(2), "cpu": 400}]}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "invalid_field" and err["field"] == "messages[1].cpu" and err["ref"] == "b-x"
        assert (await expect_ack(ws, 1))["upTo"] == 1  # the valid rest of the batch is accepted
        await ws.send(json.dumps(log(3)))
        assert (await expect_ack(ws, 3))["upTo"] == 3
        await ws.close()

    run(main())
    d = db(hub)
    wait_for(lambda: d.logs.count_documents({}) == 2, what="the valid logs")
    time.sleep(0.5)
    assert sorted(l["s"] for l in d.logs.find()) == [1, 3]
    assert d.metrics.count_documents({}) == 0, "the invalid sample was not stored"


def test_rate_limit_refuses_excess_and_closes_persistent_abusers(make_hub):
    hub = make_hub(extra_args=["--rate-limit", "5"]).start()
    secret = hub.register("tel-rate")

    async def main():
        ws = await websockets.connect(hub.ws_url, additional_headers=basic("tel-rate", secret))
        await ws.send(hello())
        await ws.recv()
        codes = []
        closed = None
        # The burst is two full batches (2 x 100 messages); the rate is 5 a second.
        for b in range(20):
            batch = {"type": "batch", "id": f"b{b}", "messages": [log(b * 100 + i) for i in range(100)]}
            try:
                await ws.send(json.dumps(batch))
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                codes.append(m.get("code") or m["type"])
            except ConnectionClosed as e:
                closed = e.rcvd.code
                break
        assert codes[:2] == ["ack", "ack"]
        assert codes[2:] == ["rate_limited"] * (len(codes) - 2) and len(codes) == 12
        assert closed == 4029

    run(main())


class Box:
    """A simulated box that keeps unacknowledged messages and resends them after reconnecting."""

    def __init__(self, device_id, secret):
        self.id, self.secret = device_id, secret
        self.boot = "boot-" + device_id
        self.seq = 0
        self.unacked = {}
        self.acked = set()

    def next_message(self):
        self.seq += 1
        kind = self.seq % 3
        m = event(self.seq, "tune", random.choice(["one", "two", "three"])) if kind == 0 else (
            log(self.seq, f"line {self.seq}") if kind == 1 else metrics(self.seq))
        self.unacked[self.seq] = m
        return m

    def ack(self, up_to):
        for s in [s for s in self.unacked if s <= up_to]:
            self.unacked.pop(s)
            self.acked.add(s)

    async def session(self, url, stop_at, rate=40):
        """Streams until `stop_at` (time) or until the hub goes away; resends unacked first."""
        try:
            ws = await websockets.connect(url, additional_headers=basic(self.id, self.secret), open_timeout=5)
        except Exception:
            await asyncio.sleep(0.3)
            return
        try:
            await ws.send(hello(boot=self.boot))
            w = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert w["type"] == "welcome"

            async def reader():
                async for raw in ws:
                    m = json.loads(raw)
                    if m["type"] == "ack":
                        self.ack(m["upTo"])

            rt = asyncio.create_task(reader())
            for m in sorted(self.unacked.values(), key=lambda m: m["seq"]):
                await ws.send(json.dumps(m))
                await asyncio.sleep(1 / rate)
            while time.time() < stop_at and not rt.done():
                await ws.send(json.dumps(self.next_message()))
                await asyncio.sleep(1 / rate * random.uniform(0.5, 1.5))
            await asyncio.sleep(0.5)  # last acks
            rt.cancel()
            await ws.close()
        except (ConnectionClosed, OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.2)


def test_store_outage_and_hub_restart_lose_nothing_acknowledged_and_store_it_once(make_hub, tmpdir_path):
    port = free_port()
    storedir = tmpdir_path / "outage-store"
    store = lambda *a: subprocess.run([str(ROOT / "scripts/store"), *a, "--dir", str(storedir)], check=True, stdout=subprocess.DEVNULL)
    store("start", "--port", str(port))
    database = "outage"
    uri = f"mongodb://127.0.0.1:{port}/{database}?directConnection=true&serverSelectionTimeoutMS=1000"
    hub = make_hub(uri=uri, database=database, extra_args=["--heartbeat", "2"]).start()
    boxes = [Box(f"out-{i}", hub.register(f"out-{i}")) for i in range(12)]

    async def stream_for(seconds, session_length=None):
        stop_at = time.time() + seconds
        while time.time() < stop_at:
            until = min(stop_at, time.time() + session_length) if session_length else stop_at
            await asyncio.gather(*(b.session(hub.ws_url, until) for b in boxes))

    marks = {}

    async def outage():
        loop = asyncio.get_running_loop()
        await asyncio.sleep(3)
        marks["before"] = sum(len(b.acked) for b in boxes)
        await loop.run_in_executor(None, store, "stop")
        await asyncio.sleep(4)
        marks["during"] = sum(len(b.acked) for b in boxes) - marks["before"]
        marks["spool"] = hub.spool_bytes()
        await loop.run_in_executor(None, lambda: store("start", "--port", str(port)))

    async def stream_through_outage():
        # Boxes stay connected through the outage and reconnect now and then (every ~2.5 s).
        await asyncio.gather(outage(), stream_for(10.5, session_length=2.5))

    try:
        run(stream_through_outage())
        assert marks["before"] > 100
        assert marks["during"] > 100, "the hub keeps acknowledging into its spool while the store is down"
        assert marks["spool"] > 0
        assert hub.stop() == 0
        hub.start()  # same ports, same spool directory
        run(stream_for(3))
        # Stop streaming; every box reconnects once more to collect its last acks.
        async def last_round():
            await asyncio.gather(*(b.session(hub.ws_url, time.time() + 1) for b in boxes))
        run(last_round())
        client = pymongo.MongoClient(uri)
        d = client[database]

        def stored():
            keys = {e["_id"] for e in d.events.find({}, {"_id": 1})} | {l["_id"] for l in d.logs.find({}, {"_id": 1})}
            for bucket in d.metrics.find():
                for s in bucket["samples"]:
                    keys.add(f"{bucket['d']}|{s['b']}|{s['s']}")
            return keys

        expected = {f"{b.id}|{b.boot}|{s}" for b in boxes for s in b.acked}
        wait_for(lambda: expected <= stored(), timeout=60, what="every acknowledged message in the store")
        samples = [f"{b['d']}|{s['b']}|{s['s']}" for b in d.metrics.find() for s in b["samples"]]
        assert len(samples) == len(set(samples)), "no metrics sample stored twice"
        assert d.events.count_documents({}) + d.logs.count_documents({}) + len(samples) == len(stored())
        print(f"acked {len(expected)} messages ({marks['during']} during the outage); all stored once")
    finally:
        hub.stop()
        subprocess.run([str(ROOT / "scripts/store"), "stop", "--dir", str(storedir)], stdout=subprocess.DEVNULL)


def test_an_ack_never_covers_a_frame_refused_for_rate_until_it_is_resent(make_hub):
    hub = make_hub(extra_args=["--rate-limit", "100"]).start()  # burst: 200 messages
    secret = hub.register("tel-gap")

    def batch(name, first):
        return json.dumps({"type": "batch", "id": name, "messages": [log(first + i) for i in range(100)]})

    async def main():
        ws = await websockets.connect(hub.ws_url, additional_headers=basic("tel-gap", secret))
        await ws.send(hello())
        await ws.recv()
        await ws.send(batch("A", 1))
        assert (await expect_ack(ws, 100))["upTo"] == 100
        await ws.send(batch("B", 101))
        assert (await expect_ack(ws, 200))["upTo"] == 200
        await ws.send(batch("C", 201))
        err = json.loads(await ws.recv())
        assert err["code"] == "rate_limited" and err["ref"] == "C"
        await asyncio.sleep(1.2)
        await ws.send(batch("D", 301))  # accepted and stored, but C's seqs are missing: no ack past 200
        with pytest.raises(asyncio.TimeoutError):
            m = json.loads(await asyncio.wait_for(ws.recv(), 0.8))
            assert m["type"] == "ack" and m["upTo"] <= 200, m
            raise asyncio.TimeoutError
        await asyncio.sleep(1.2)
        await ws.send(batch("C", 201))  # the resend closes the gap
        assert (await expect_ack(ws, 400))["upTo"] == 400
        await ws.close()

    run(main())
