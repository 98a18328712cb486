#!/usr/bin/env python3
"""Holds many idle WebSocket connections open, for scripts/bench/connections.

    wsclients.py URL IDS_FILE FIRST COUNT SOURCE_IP [--hello] [--extra]

IDS_FILE has lines `id secret` (secret may be '-' for servers without auth). Connects
COUNT clients starting at line FIRST, from SOURCE_IP, with bounded concurrency; each sends
`hello` (hub) or one text message (echo server) and waits for the answer, then stays idle.
Prints `connected N failed M` once, then holds until stdin closes, then exits.
With --extra it instead reports how each attempt was answered (`status:503` etc.) and exits.
"""
import asyncio
import base64
import collections
import json
import random
import sys

import websockets
from websockets.exceptions import InvalidStatus


async def one(url, dev, secret, source_ip, hello, conns, sem, retries=0):
    """Connects (and says hello or sends one message). With `retries`, a 503 with Retry-After is
    retried after that delay plus jitter, as real boxes do (the hub's admission control answers
    503 when it is busy verifying other boxes); the wait is outside the concurrency limit."""
    headers = {}
    if secret != "-":
        headers["Authorization"] = "Basic " + base64.b64encode(f"{dev}:{secret}".encode()).decode()
    for attempt in range(retries + 1):
        try:
            async with sem:
                ws = await websockets.connect(url, additional_headers=headers, local_addr=(source_ip, 0), open_timeout=60,
                                              ping_interval=None, max_queue=4, compression=None)
                msg = json.dumps({"type": "hello", "id": "h", "seq": 1, "model": "bench", "firmware": "1", "bootId": "b"}) if hello else "x"
                await ws.send(msg)
                await asyncio.wait_for(ws.recv(), 60)
                conns.append(ws)
                return
        except InvalidStatus as e:
            after = e.response.headers.get("Retry-After")
            if attempt == retries or e.response.status_code != 503 or after is None:
                raise
            await asyncio.sleep(float(after) * (0.5 + random.random()))


async def hold(args):
    url, ids_file, first, count, source_ip = args[0], args[1], int(args[2]), int(args[3]), args[4]
    hello = "--hello" in args
    extra = "--extra" in args
    lines = open(ids_file).read().split("\n")[first:first + count]
    pairs = [l.split() for l in lines if l.strip()]
    sem = asyncio.Semaphore(200)
    conns = []
    # Holders retry refusals like real boxes; --extra reports how each single attempt was answered.
    retries = 0 if extra else 20
    results = await asyncio.gather(*(one(url, d, s, source_ip, hello, conns, sem, retries) for d, s in pairs), return_exceptions=True)
    if extra:
        tally = collections.Counter()
        for r in results:
            if r is None:
                tally["connected"] += 1
            elif isinstance(r, InvalidStatus):
                tally[f"status:{r.response.status_code}" + (":retry-after" if r.response.headers.get("Retry-After") else "")] += 1
            else:
                tally[type(r).__name__] += 1
        print(json.dumps(dict(tally)), flush=True)
        for ws in conns:
            await ws.close()
        return
    failed = [r for r in results if r is not None]
    print(f"connected {len(conns)} failed {len(failed)}" + (f" first-error {failed[0]!r}" if failed else ""), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for ws in conns:
        ws.transport.abort()


if __name__ == "__main__":
    asyncio.run(hold(sys.argv[1:]))
