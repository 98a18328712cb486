"""Serving speed of recommendations (issue 15: p99 <= 5 ms per request at 20,000 items x 64
factors), through the real serving path of a release hub: a 20k x 64 model imported with
`argus-hub recommend import` (random factors, .npy), boxes registered, then
- the operator API, `GET /api/v1/devices/{id}/recommendations?n=10`, one keep-alive connection,
  requests one after another (each does the device read, the "watching" read, the top-N and the
  audit write);
- the box's WebSocket, protocol 1.2 `recommendations` (n=10), one box, requests one after another
  (no device read and no audit: the top-N and the "watching" read);
timed at the client, p50 / p90 / p99 / max printed. Run by scripts/bench/recommend_serve.
"""
import argparse
import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import websockets

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(name, ms):
    return (f"{name:<28} n={len(ms):>5}  p50 {pct(ms, 50):6.2f} ms  p90 {pct(ms, 90):6.2f} ms  "
            f"p99 {pct(ms, 99):6.2f} ms  max {max(ms):7.2f} ms  mean {statistics.mean(ms):6.2f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hub", required=True, help="argus-hub binary (release)")
    ap.add_argument("--mongodb-uri", required=True)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--boxes", type=int, default=1_000)
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="argus-bench-serve-"))
    db = f"bench_serve_{os.getpid()}"
    head, _, query = a.mongodb_uri.partition("?")
    uri = f"{head.rstrip('/')}/{db}?{query}"
    api_port, dev_port = free_port(), free_port()
    log = open(tmp / "hub.log", "wb")
    hub = subprocess.Popen([a.hub, "--api-port", str(api_port), "--device-port", str(dev_port), "--mongodb-uri", uri,
                            "--token-file", str(tmp / "token"), "--spool-dir", str(tmp / "spool"), "--log-level", "warning"],
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not (tmp / "token").exists():
            if hub.poll() is not None or time.time() > deadline:
                sys.exit(f"hub did not start: {(tmp / 'hub.log').read_text()[-2000:]}")
            time.sleep(0.2)
        token = (tmp / "token").read_text().strip()
        conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)

        def call(method, path, body=None, ctype="application/json"):
            conn.request(method, path, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
            r = conn.getresponse()
            data = r.read()
            if r.status >= 300:
                sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
            return json.loads(data) if data else None

        # Boxes, registered 1,000 at a time; their secrets for the WebSocket.
        boxes = [f"serve-{i}" for i in range(a.boxes)]
        secrets = {}
        for k in range(0, len(boxes), 1000):
            body = "\n".join(f"{b},bench-1" for b in boxes[k:k + 1000]).encode()
            for row in call("POST", "/api/v1/devices:batch", body, "text/csv")["results"]:
                if row.get("secret"):
                    secrets[row["id"]] = row["secret"]

        # The model: random factors, as .npy with id files.
        rng = np.random.default_rng(a.seed)
        scale = 1 / np.sqrt(a.factors)
        np.save(tmp / "items.npy", (rng.normal(size=(a.items, a.factors)) * scale).astype(np.float32))
        np.save(tmp / "users.npy", (rng.normal(size=(len(boxes), a.factors)) * scale).astype(np.float32))
        (tmp / "items.ids").write_text("\n".join(f"ch-{i}" for i in range(a.items)) + "\n")
        (tmp / "users.ids").write_text("\n".join(boxes) + "\n")
        t0 = time.monotonic()
        r = subprocess.run([a.hub, "recommend", "import", "--users", str(tmp / "users.npy"), "--user-ids", str(tmp / "users.ids"),
                            "--items", str(tmp / "items.npy"), "--item-ids", str(tmp / "items.ids"), "--mongodb-uri", uri, "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"import failed: {r.stderr}")
        print(f"imported {a.items} items x {a.factors} factors, {len(boxes)} boxes in {time.monotonic() - t0:.1f} s: {r.stdout.strip()}")

        # Warm up (the first request loads the model), then time.
        first = call("GET", f"/api/v1/devices/{boxes[0]}/recommendations?n={a.n}")
        assert len(first["items"]) == a.n and not first["coldStart"], first
        for b in boxes[:50]:
            call("GET", f"/api/v1/devices/{b}/recommendations?n={a.n}")
        rest = []
        for i in range(a.requests):
            b = boxes[i % len(boxes)]
            t = time.perf_counter()
            call("GET", f"/api/v1/devices/{b}/recommendations?n={a.n}")
            rest.append((time.perf_counter() - t) * 1000)

        async def box_requests():
            # Within each session's bounds (5 in a burst, then one per 5 s): 5 sequential requests per
            # box, box after box.
            out = []
            for b in boxes[:max(1, min(len(boxes), a.requests // 5))]:
                auth = base64.b64encode(f"{b}:{secrets[b]}".encode()).decode()
                async with websockets.connect(f"ws://127.0.0.1:{dev_port}/v1/stb", additional_headers={"Authorization": f"Basic {auth}"},
                                              ping_interval=None, max_size=None) as ws:
                    await ws.send(json.dumps({"type": "hello", "id": "h", "model": "bench-1", "firmware": "1.0", "bootId": "bench"}))
                    assert json.loads(await ws.recv())["type"] == "welcome"
                    # A portal asks well after the hello: let the hello's own store work (presence,
                    # open commands) finish first, so that it is not timed as the request's.
                    await asyncio.sleep(0.1)
                    for k in range(5):
                        t = time.perf_counter()
                        await ws.send(json.dumps({"type": "recommendations", "id": f"r{k}", "n": a.n}))
                        m = json.loads(await ws.recv())
                        out.append((time.perf_counter() - t) * 1000)
                        assert m["type"] == "recommendations", m
            return out
        ws = asyncio.run(box_requests()) if os.environ.get("BENCH_SERVE_WS", "1") == "1" else []

        print(f"serving: {a.items} items x {a.factors} factors, n={a.n}, requests one after another")
        print(summary("API GET recommendations", rest))
        if ws:
            print(summary("box WebSocket (1.2)", ws))
        print(json.dumps({"items": a.items, "factors": a.factors, "n": a.n, "api": {"p50": pct(rest, 50), "p99": pct(rest, 99), "n": len(rest)},
                          "ws": {"p50": pct(ws, 50), "p99": pct(ws, 99), "n": len(ws)} if ws else None}))
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(20)
        except subprocess.TimeoutExpired:
            hub.kill()
        try:
            import pymongo
            pymongo.MongoClient(a.mongodb_uri, serverSelectionTimeoutMS=3000).drop_database(db)
        except Exception:
            pass


if __name__ == "__main__":
    main()
