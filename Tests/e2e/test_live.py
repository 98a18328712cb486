"""The operator live view: one box's telemetry as it arrives, fleet counters each second."""
import asyncio
import json
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import basic, hello


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


def live_url(hub, query):
    return f"ws://127.0.0.1:{hub.api_port}/api/v1/live?{query}"


def counters(hub, names=("argus_telemetry_messages_acked_total", "argus_telemetry_read_pauses_total")):
    """Unlabelled counters from the hub's /metrics (absent: 0, as a counter never incremented)."""
    import re
    _, text, _ = hub.call("GET", "/metrics", token=False, expect=200)
    out = {}
    for n in names:
        m = re.search(rf"^{n} ([0-9.e+-]+)$", text if isinstance(text, str) else "", re.M)
        out[n] = float(m.group(1)) if m else 0
    return out


def test_live_view_streams_one_boxs_telemetry_and_fleet_counters(hub):
    secret = hub.register("live-1")
    _, analyst, _ = hub.call("POST", "/api/v1/tokens", {"name": "viewer", "role": "analyst"}, expect=201)
    # One box's live telemetry carries its viewing, personal data: operators only (issue 11);
    # analysts get the fleet counters.
    _, operator, _ = hub.call("POST", "/api/v1/tokens", {"name": "viewer-op", "role": "operator"}, expect=201)

    async def main():
        with pytest.raises(InvalidStatus) as e:
            await websockets.connect(live_url(hub, "device=live-1"))
        # Hummingbird answers any refused WebSocket upgrade with a bare 400; the same URL
        # without Upgrade says why (401 here, checked below).
        assert e.value.response.status_code == 400
        with pytest.raises(InvalidStatus):
            await websockets.connect(live_url(hub, "device=live-1"), additional_headers={"Authorization": f"Bearer {analyst['token']}"})
        view = await websockets.connect(live_url(hub, "device=live-1"), additional_headers={"Authorization": f"Bearer {operator['token']}"})
        fleet = await websockets.connect(live_url(hub, f"fleet=1&token={analyst['token']}"))
        box = await websockets.connect(hub.ws_url, additional_headers=basic("live-1", secret))
        await box.send(hello(boot="live-boot"))
        await box.recv()
        frame = {"type": "log", "seq": 1, "ts": int(time.time() * 1000), "level": "warn", "source": "player", "text": "live!"}
        await box.send(json.dumps(frame))
        got = json.loads(await asyncio.wait_for(view.recv(), 5))
        assert got == {"type": "telemetry", "device": "live-1", "bootId": "live-boot", "frame": frame}
        f = json.loads(await asyncio.wait_for(fleet.recv(), 5))
        assert f["type"] == "fleet" and f["sessions"] >= 1 and "ackedPerSec" in f and "spoolBytes" in f
        for ws in (view, fleet, box):
            await ws.close()

    run(main())
    assert hub.call("GET", "/api/v1/live?device=live-1")[0] == 426
    assert hub.call("GET", "/api/v1/live?device=live-1", token=False)[0] == 401
    assert hub.call("GET", "/api/v1/live?device=live-1", token=analyst["token"])[0] == 403
    assert hub.call("GET", "/api/v1/live")[0] == 400
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=live.subscribe", expect=200)
    assert {(a["actor"], a["target"]) for a in audit["items"]} == {("viewer-op", "live-1"), ("viewer", "fleet")}


def test_a_slow_live_subscriber_is_dropped_and_never_slows_ingest(make_hub):
    hub = make_hub(extra_args=["--rate-limit", "100000"]).start()
    secret = hub.register("live-fast")

    async def main():
        # A viewer that never reads: its socket fills, then its queue, then it is dropped.
        slow = await websockets.connect(live_url(hub, f"device=live-fast&token={hub.token}"), max_queue=1)
        box = await websockets.connect(hub.ws_url, additional_headers=basic("live-fast", secret))
        await box.send(hello())
        await box.recv()
        text = "x" * 500
        seq = 0

        async def send_frame(b):
            nonlocal seq
            msgs = []
            for _ in range(100):
                seq += 1
                msgs.append(f'{{"type":"log","seq":{seq},"ts":1,"level":"info","source":"s","text":"{text}"}}')
            await box.send(f'{{"type":"batch","id":"b{b}","messages":[{",".join(msgs)}]}}')
            while True:  # window of one frame: every frame is acknowledged before the next
                m = json.loads(await asyncio.wait_for(box.recv(), 5))
                if m["type"] == "ack" and m["upTo"] >= seq:
                    return

        # Send until the hub has dropped the stuck viewer (its socket buffers and its queue of
        # 256 frames full), then 50 frames more: ingest must go on after the drop as before.
        frames = 0
        while True:
            await send_frame(frames)
            frames += 1
            if frames % 20 == 0:
                dropped = (await asyncio.to_thread(counters, hub, ("argus_live_subscribers_dropped_total",)))["argus_live_subscribers_dropped_total"]
                if dropped == 1:
                    break
            assert frames < 3000, "the stuck viewer was never dropped"
        for _ in range(50):
            await send_frame(frames)
            frames += 1
        # Every message was acknowledged (above, one frame at a time), the hub counts all of
        # them acked and never stopped reading the box while the viewer was stuck.
        ingest = await asyncio.to_thread(counters, hub)
        assert ingest["argus_telemetry_messages_acked_total"] == seq == frames * 100, ingest
        assert ingest["argus_telemetry_read_pauses_total"] == 0, ingest
        # The viewer reads again: what was already on its socket, then the 1008 close (the
        # hub skipped the rest of its backlog).
        codes = []
        try:
            while True:
                await asyncio.wait_for(slow.recv(), 10)
        except ConnectionClosed as e:
            codes.append(e.rcvd.code if e.rcvd else None)
        assert codes == [1008]
        await box.close()

    run(main(), timeout=120)
