#!/usr/bin/env python3
"""Telemetry load for scripts/bench/ingest: BOXES connections from one process, each sending
batches of BATCH messages (mostly metrics, some viewing events and log lines) as fast as its
acks allow, with at most WINDOW unacknowledged frames per box.

    ingest_load.py URL IDS_FILE FIRST BOXES SECONDS BATCH WINDOW SOURCE_IP [GO_FILE]

With GO_FILE, it connects every box (retrying 503s), prints {"ready": N}, and starts streaming
once GO_FILE exists.

Prints one JSON line: messages sent and acknowledged, and the send-to-ack latency of frames
(p50, p99, in ms, measured here, so it includes this client's own scheduling).
"""
import asyncio
import base64
import json
import os
import random
import sys
import time

import websockets
from websockets.exceptions import InvalidStatus


async def connect_box(url, dev, secret, source_ip, retries=20):
    """Connects and says hello. A 503 with Retry-After (the hub's admission control, busy
    verifying other boxes) is retried after that delay plus jitter, as real boxes do."""
    headers = {"Authorization": "Basic " + base64.b64encode(f"{dev}:{secret}".encode()).decode()}
    for attempt in range(retries + 1):
        try:
            ws = await websockets.connect(url, additional_headers=headers, local_addr=(source_ip, 0), open_timeout=60,
                                          ping_interval=None, compression=None, max_queue=None)
            break
        except InvalidStatus as e:
            after = e.response.headers.get("Retry-After")
            if attempt == retries or e.response.status_code != 503 or after is None:
                raise
            await asyncio.sleep(float(after) * (0.5 + random.random()))
    await ws.send(json.dumps({"type": "hello", "id": "h", "seq": 0, "model": "bench", "firmware": "1", "bootId": f"bench-{time.time_ns()}"}))
    await ws.recv()
    return ws


async def box(ws, seconds, batch, window, stats):
    seq = 0
    inflight = {}  # last seq of frame -> send time
    credit = asyncio.Semaphore(window)
    done = asyncio.Event()

    async def reader():
        async for raw in ws:
            m = json.loads(raw)
            if m.get("type") != "ack":
                stats["errors"] += 1
                continue
            now = time.perf_counter()
            for last in [k for k in inflight if k <= m["upTo"]]:
                stats["lat"].append(now - inflight.pop(last))
                stats["acked"] += batch
                credit.release()
            if done.is_set() and not inflight:
                return

    rt = asyncio.create_task(reader())
    end = time.time() + seconds
    ch = ["bbc-one.uk", "itv1.uk", "channel4.uk", "bbc-news.uk", "sky-sports.uk"]
    while time.time() < end and not rt.done():
        try:
            await asyncio.wait_for(credit.acquire(), max(0.01, end - time.time()))
        except asyncio.TimeoutError:
            break
        ts = int(time.time() * 1000)
        msgs = []
        for i in range(batch):
            seq += 1
            k = seq % 20
            if k == 0:
                msgs.append(f'{{"type":"event","seq":{seq},"ts":{ts},"event":"tune","channel":"{ch[seq % 5]}"}}')
            elif k == 1:
                msgs.append(f'{{"type":"log","seq":{seq},"ts":{ts},"level":"info","source":"player","text":"segment {seq} ok"}}')
            else:
                msgs.append(f'{{"type":"metrics","seq":{seq},"ts":{ts},"cpu":{seq % 97}.5,"mem":41.2,"tempC":52.0,'
                            f'"uptimeSec":{seq},"rttMs":9.1,"bitrateKbps":8200,"underruns":0,"droppedFrames":{seq % 3}}}')
        frame = '{"type":"batch","messages":[' + ",".join(msgs) + "]}"
        inflight[seq] = time.perf_counter()
        try:
            await ws.send(frame)
        except websockets.exceptions.ConnectionClosed as e:
            stats["closed"] = stats.get("closed", 0) + 1
            stats["close_codes"] = sorted(set(stats.get("close_codes", [])) | {e.rcvd.code if e.rcvd else None})
            break
        stats["sent"] += batch
    done.set()
    try:
        await asyncio.wait_for(rt, 10)
    except asyncio.TimeoutError:
        rt.cancel()
    await ws.close()


async def main(a):
    url, ids, first, boxes, seconds, batch, window, src = a[0], a[1], int(a[2]), int(a[3]), float(a[4]), int(a[5]), int(a[6]), a[7]
    go_file = a[8] if len(a) > 8 else None
    pairs = [l.split() for l in open(ids).read().split("\n")[first:first + boxes] if l.strip()]
    stats = {"sent": 0, "acked": 0, "errors": 0, "lat": []}
    # Every box connects first (retrying refusals), then all stream for the same `seconds`.
    sockets = await asyncio.gather(*(connect_box(url, d, s, src) for d, s in pairs))
    if go_file:
        # Every load process connects its boxes, says so, and waits for the others: the
        # measurement covers streaming only, not connection set-up.
        print(json.dumps({"ready": len(sockets)}), flush=True)
        while not os.path.exists(go_file):
            await asyncio.sleep(0.05)
    await asyncio.gather(*(box(ws, seconds, batch, window, stats) for ws in sockets))
    lat = sorted(stats["lat"])
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * (len(lat) - 1)))] * 1000, 2) if lat else None
    print(json.dumps({"sent": stats["sent"], "acked": stats["acked"], "errors": stats["errors"],
                      "closed": stats.get("closed", 0), "close_codes": stats.get("close_codes", []),
                      "frames": len(lat), "p50_ms": pick(0.5), "p99_ms": pick(0.99)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
