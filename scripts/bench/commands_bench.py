"""Command latency against running hubs (driven by scripts/bench/commands).

  roundtrip API_A API_B TOKEN DEVICE SECRET WS_A WS_B N   one Python box: local, then cross-node
  broadcast API TOKEN MONGODB_URI N_BOXES METRICS_URLS    one job to every box, timed from the store
"""
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request

import pymongo
import websockets


SEEN = set()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def post(api, token, body):
    req = urllib.request.Request(api + "/api/v1/commands", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def auth(device, secret):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{device}:{secret}".encode()).decode()}


async def box_session(ws_url, device, secret, api, token, n, label):
    """Issues n commands one after another to the box this coroutine plays, and times them."""
    async with websockets.connect(ws_url, additional_headers=auth(device, secret), open_timeout=10, compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "id": "h", "seq": 1, "ts": int(time.time() * 1000), "model": "bench",
                                  "firmware": "1", "bootId": f"b{int(time.time() * 1000)}"}))
        assert json.loads(await ws.recv())["type"] == "welcome"
        seq = 1
        deliver, rtt = [], []
        seen = SEEN  # across sessions: a box that reconnects may get an earlier command again
        loop = asyncio.get_running_loop()
        for i in range(n):
            t0 = time.perf_counter()
            fut = loop.run_in_executor(None, post, api, token, {"name": "reload_portal", "target": {"device": device}})
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if m["type"] != "command":
                    continue
                if m["id"] in seen:  # a repeated delivery (at least once): answer it again, keep waiting
                    seq += 1
                    await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": int(time.time() * 1000), "ref": m["id"], "state": "succeeded"}))
                    continue
                seen.add(m["id"])
                break
            t1 = time.perf_counter()
            seq += 1
            await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": int(time.time() * 1000), "ref": m["id"], "state": "succeeded"}))
            while True:
                a = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if a["type"] == "ack" and a["upTo"] >= seq:
                    break
            t2 = time.perf_counter()
            await fut
            if os.environ.get("BENCH_TRACE"): print(f"  {m['id']} {(t1 - t0) * 1000:.2f} {(t2 - t0) * 1000:.2f}")
            if i >= 5:  # warm-up
                deliver.append((t1 - t0) * 1000)
                rtt.append((t2 - t0) * 1000)
        print(f"{label}: {len(deliver)} commands; API request -> box has the frame: p50 {pct(deliver, 50):.2f} ms, "
              f"p99 {pct(deliver, 99):.2f} ms, max {max(deliver):.2f} ms; -> box's status durable (acked): "
              f"p50 {pct(rtt, 50):.2f} ms, p99 {pct(rtt, 99):.2f} ms")


def storefloor(uri, n):
    """The peer: one insert_one of a job-sized document, the write every command waits for."""
    import pymongo
    db = pymongo.MongoClient(uri).get_default_database()
    lat = []
    for i in range(int(n)):
        t0 = time.perf_counter()
        db.bench_floor.insert_one({"name": "reload_portal", "params": {}, "devices": ["rt-box"], "i": i, "pad": "x" * 200})
        lat.append((time.perf_counter() - t0) * 1000)
    db.bench_floor.drop()
    print(f"peer, the store alone: insert_one from Python: p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms")


def roundtrip(api_a, api_b, token, device, secret, ws_a, ws_b, n, mode):
    n = int(n)
    asyncio.run(box_session(ws_a, device, secret, api_a, token, n, "same node"))
    asyncio.run(box_session(ws_b, device, secret, api_a, token, max(20, n // 3), f"across nodes ({mode})"))


def metric(url, name):
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
    return 0.0


def broadcast(api, token, uri, n, metrics_urls, agent_logs):
    """One job for every box; each box's agent prints when it shows the message (wall clock),
    so delivery is timed at the boxes, independent of how fast the store absorbs the reports."""
    import re
    n = int(n)
    urls = metrics_urls.split(",")
    logs = agent_logs.split(",")
    enc0 = [metric(u, "argus_command_frames_encoded_total") for u in urls]
    sent0 = [metric(u, "argus_commands_delivered_total") for u in urls]
    delay0 = [metric(u, "argus_command_fanout_delay_seconds_sum") for u in urls]
    dur0 = [metric(u, "argus_command_fanout_duration_seconds_sum") for u in urls]
    offsets = [os.path.getsize(p) for p in logs]
    # Peer, in the same moment: the store alone, under the fleet's telemetry load.
    probe = pymongo.MongoClient(uri).get_default_database().bench_probe
    plat = []
    for i in range(20):
        t = time.perf_counter()
        probe.insert_one({"i": i})
        plat.append((time.perf_counter() - t) * 1000)
    print(f"peer, the store alone under this load: insert_one from Python: p50 {pct(plat, 50):.1f} ms, p99 {pct(plat, 99):.1f} ms")
    text = f"bench broadcast {time.time()}"
    t0 = time.time()
    job = post(api, token, {"name": "message", "params": {"text": text}, "target": {"all": True}})
    t_api = time.time()
    created = job["createdAt"] / 1000
    print(f"broadcast job {job['id']} to {job['count']} boxes; API answered in {(t_api - t0) * 1000:.0f} ms "
          f"(of which validating, before the job was created: {(created - t0) * 1000:.0f} ms)")
    pat = re.compile(r"\[on-screen message\] (\S+) \(\d+s\) at (\d+): " + re.escape(text))
    seen = {}
    deadline = time.time() + 120
    while time.time() < deadline and len(seen) < n:
        time.sleep(0.5)
        for i, p in enumerate(logs):
            with open(p, "rb") as f:
                f.seek(offsets[i])
                chunk = f.read()
            cut = chunk.rfind(b"\n") + 1
            offsets[i] += cut
            for line in chunk[:cut].decode(errors="replace").splitlines():
                m = pat.search(line)
                if m:
                    seen.setdefault(m.group(1), int(m.group(2)) / 1000)
    lat = [(t - t_api) * 1000 for t in seen.values()]
    req = [(t - t0) * 1000 for t in seen.values()]
    print(f"boxes that showed it: {len(seen)}/{n}")
    if lat:
        print(f"API answered (boxes resolved, job stored) -> box shows it (negative: before the answer): p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms; "
              f"API request -> box: p50 {pct(req, 50):.0f} ms, p99 {pct(req, 99):.0f} ms, max {max(req):.0f} ms")
    enc = [metric(u, "argus_command_frames_encoded_total") - e for u, e in zip(urls, enc0)]
    per_node = [metric(u, "argus_commands_delivered_total") - s for u, s in zip(urls, sent0)]
    print(f"frames encoded per node: {enc}; frames delivered per node: {per_node}")
    # One broadcast per run: the histograms' sums grew by this fan-out's figures.
    delay = [round((metric(u, "argus_command_fanout_delay_seconds_sum") - d) * 1000) for u, d in zip(urls, delay0)]
    dur = [(metric(u, "argus_command_fanout_duration_seconds_sum") - d) * 1000 for u, d in zip(urls, dur0)]
    print(f"per node, job created -> fan-out starts: {delay} ms; fan-out writes every frame in: {[round(d, 1) for d in dur]} ms")


if __name__ == "__main__":
    {"roundtrip": roundtrip, "broadcast": broadcast, "storefloor": storefloor}[sys.argv[1]](*sys.argv[2:])
