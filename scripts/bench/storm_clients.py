#!/usr/bin/env python3
"""Reconnect-storm clients for scripts/bench/storm: plain asyncio sockets, no retries
unless told, like a box from a vendor whose client does not retry.

    storm_clients.py HOST PORT IDS_FILE FIRST COUNT SOURCE_IPS GO_FILE

SOURCE_IPS is a comma-separated list: attempts take them in turn, so that no source address
runs out of ephemeral ports (a connect that fails on the client side is counted apart, as
"client_error", never as a silent hub).

Waits until GO_FILE exists, then opens COUNT connections at once (lines FIRST.. of IDS_FILE,
`id secret`), each sending one upgrade request. Each handshake ends in 101 (then the box
sends hello and reads welcome, and stays connected), 503 (Retry-After noted), another
status, or none (closed or silent for 30 s). Prints one JSON line with the counts, then
retries every refused box once its Retry-After (plus up to 1 s jitter) has passed, until all
are connected or 120 s have passed, and prints a second JSON line with the time until all
were back. Holds the connections until stdin closes.
"""
import asyncio
import base64
import json
import os
import random
import sys
import time


def masked_text_frame(text: bytes) -> bytes:
    key = os.urandom(4)
    n = len(text)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(text))


async def handshake(host, port, dev, secret, source_ip):
    """Returns ("101", writer) or (status, retry_after) or ("none", None)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(source_ip, 0)), 30)
    except asyncio.TimeoutError:
        return "none", None  # no TCP answer in 30 s
    except OSError:
        return "client_error", None  # e.g. no free port on this source address
    auth = base64.b64encode(f"{dev}:{secret}".encode()).decode()
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /v1/stb HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Basic {auth}\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, asyncio.LimitOverrunError):
        writer.close()
        return "none", None
    status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/1.1 ") else "other"
    if status != "101":
        retry = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"retry-after:"):
                retry = int(line.split(b":", 1)[1])
        writer.close()
        return status, retry
    hello = json.dumps({"type": "hello", "id": "h", "seq": 1, "model": "bench", "firmware": "1", "bootId": "b"}).encode()
    writer.write(masked_text_frame(hello))
    try:
        await asyncio.wait_for(reader.read(2), 60)  # the welcome frame's first bytes
    except (asyncio.TimeoutError, ConnectionError):
        writer.close()
        return "none", None
    return "101", (reader, writer)


async def main(args):
    host, port, ids_file, first, count, go = args[0], int(args[1]), args[2], int(args[3]), int(args[4]), args[6]
    ips = args[5].split(",")
    turn = [0]

    def source_ip():
        turn[0] += 1
        return ips[turn[0] % len(ips)]
    pairs = [l.split() for l in open(ids_file).read().split("\n")[first:first + count] if l.strip()]
    while not os.path.exists(go):
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    results = await asyncio.gather(*[handshake(host, port, d, s, source_ip()) for d, s in pairs])
    counts = {"101": 0, "503": 0, "other": 0, "none": 0, "client_error": 0}
    held, retry = [], []
    for (d, s), (status, extra) in zip(pairs, results):
        if status == "101":
            counts["101"] += 1
            held.append(extra)
        elif status == "503":
            counts["503"] += 1
            retry.append((d, s, extra or 1))
        elif status in ("none", "client_error"):
            counts[status] += 1
            retry.append((d, s, 1))
        else:
            counts["other"] += 1
            counts.setdefault("statuses", {})
            counts["statuses"][status] = counts["statuses"].get(status, 0) + 1
    counts["first_round_s"] = round(time.monotonic() - t0, 2)
    print(json.dumps(counts), flush=True)

    rounds = 0
    while retry and time.monotonic() - t0 < 120:
        rounds += 1

        async def again(d, s, after):
            await asyncio.sleep(after + random.random())
            return d, s, await handshake(host, port, d, s, source_ip())
        out = await asyncio.gather(*[again(d, s, a) for d, s, a in retry])
        retry = []
        for d, s, (status, extra) in out:
            if status == "101":
                held.append(extra)
            else:
                retry.append((d, s, extra if status == "503" and extra else 1))
    print(json.dumps({"all_back_s": round(time.monotonic() - t0, 2) if not retry else None, "connected": len(held),
                      "still_out": len(retry), "retry_rounds": rounds}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for _, w in held:
        w.close()


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1:]))
