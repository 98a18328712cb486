"""The C reference agent (stb-agent) against a real hub and store."""
import os
import signal
import subprocess
import time

import pymongo

from conftest import wait_for, ROOT, bin_dir
from helpers import spec_errors


def evening():
    """Yesterday 19:00 UTC: simulated prime time, so the viewing model is busy."""
    t = time.gmtime(time.time() - 86400)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T19:00Z"


def agent(*args, log=None):
    return subprocess.Popen([str(bin_dir() / "stb-agent"), *args], stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, cwd=ROOT)


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def online_count(hub):
    n, cursor = 0, None
    while True:
        path = "/api/v1/devices?online=true&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        _, page, _ = hub.call("GET", path, expect=200)
        n += len(page["items"])
        cursor = page.get("nextCursor")
        if not cursor:
            return n


def test_one_box_connects_and_its_telemetry_reaches_the_store(hub, tmpdir_path):
    secret = hub.register("agent-1")
    log = open(tmpdir_path / "agent-1.log", "wb")
    p = agent("--hub", hub.ws_url, "--id", "agent-1", "--secret", secret, "--state-dir", str(tmpdir_path / "state"),
              "--firmware", "3.2.1", "--start", evening(), "--clock-speed", "600", "--seed", "3", log=log)
    try:
        d = hub.wait_device("agent-1", lambda d: d["online"], timeout=20)
        assert d["firmware"] == "3.2.1" and d["model"] == "argus-sim-1" and d["bootId"]
        db = pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]
        wait_for(lambda: db.metrics.count_documents({"d": "agent-1"}) > 0, what="heartbeat metrics in the store")
        sample = db.metrics.find_one({"d": "agent-1"})["samples"][0]
        assert {"cpu", "mem", "tempC", "uptimeSec", "rttMs", "bitrateKbps"} <= set(sample)
        wait_for(lambda: db.events.count_documents({"d": "agent-1"}) > 0, what="viewing events in the store")
        frm = int((time.time() - 2 * 86400) * 1000)  # the simulated clock started yesterday evening
        _, series, _ = hub.call("GET", f"/api/v1/devices/agent-1/metrics?step=3600&from={frm}", expect=200)
        assert series.get("latest") and series["points"]
    finally:
        stop(p)
    hub.wait_device("agent-1", lambda d: not d["online"], timeout=20)


def test_a_fleet_of_500_connects_streams_and_reconnects_after_a_hub_restart(make_hub, tmpdir_path):
    hub = make_hub(extra_args=["--heartbeat", "5"]).start()
    secrets = tmpdir_path / "fleet.secrets"
    env = dict(os.environ, ARGUS_API=hub.api, ARGUS_TOKEN=hub.token)
    r = subprocess.run([str(ROOT / "scripts/register-fleet"), "500", "fl", str(secrets)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(secrets.read_text().split("\n")) >= 500
    log_path = tmpdir_path / "fleet.log"
    p = agent("--fleet", "500", "--id-prefix", "fl", "--secrets-file", str(secrets), "--hub", hub.ws_url,
              "--source-ips", "127.0.0.2-127.0.0.5", "--ramp", "500", "--seed", "7", "--clock-speed", "30", "--start", evening(),
              "--progress", "1", log=open(log_path, "wb"))
    try:
        wait_for(lambda: online_count(hub) == 500, timeout=90, what="500 boxes online")
        db = pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]
        wait_for(lambda: db.events.count_documents({}) > 500, timeout=60, what="viewing events from the fleet")
        wait_for(lambda: db.metrics.count_documents({}) >= 400, timeout=60, what="heartbeats from the fleet")
        # Restart the hub: boxes see 1001, back off, and come back.
        assert hub.stop() == 0
        assert online_count_from_store(db) == 0
        hub.start()
        wait_for(lambda: online_count(hub) == 500, timeout=120, what="500 boxes back online after the restart")
        assert p.poll() is None, "the agent process survived the hub restart"
        text = log_path.read_text(errors="replace")
        progress = [l for l in text.splitlines() if "connected" in l and "acked" in l]
        assert progress, text[-2000:]
    finally:
        stop(p)


def online_count_from_store(db):
    return db.devices.count_documents({"online": True})


def test_an_unreadable_secrets_file_exits_2_with_a_clear_message(tmpdir_path):
    p = subprocess.run([str(bin_dir() / "stb-agent"), "--fleet", "3", "--id-prefix", "x", "--secrets-file",
                        str(tmpdir_path / "missing"), "--hub", "ws://127.0.0.1:1/v1/stb"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2
    assert "missing" in p.stderr


def test_a_simulated_channel_outage_raises_a_fleet_alarm_that_is_acknowledged_and_cleared(make_hub, tmpdir_path):
    import asyncio
    import json

    import websockets

    hub = make_hub(extra_args=["--outage-share", "0.3", "--outage-min-viewers", "3"]).start()
    secrets = tmpdir_path / "alarm.secrets"
    env = dict(os.environ, ARGUS_API=hub.api, ARGUS_TOKEN=hub.token)
    subprocess.run([str(ROOT / "scripts/register-fleet"), "120", "al", str(secrets)], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    channel = next(l.split()[0] for l in (ROOT / "data/channels.txt").read_text().splitlines() if l.strip() and not l.startswith("#"))
    seen_live = []

    async def watch_live(stop):
        async with websockets.connect(f"ws://127.0.0.1:{hub.api_port}/api/v1/live?fleet=1&token={hub.token}") as ws:
            while not stop.is_set():
                try:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except asyncio.TimeoutError:
                    continue
                if m["type"] == "alarm":
                    seen_live.append(m)

    p = agent("--fleet", "120", "--id-prefix", "al", "--secrets-file", str(secrets), "--hub", hub.ws_url,
              "--ramp", "500", "--seed", "5", "--clock-speed", "60", "--start", evening(), "--force-outage", "0",
              log=open(tmpdir_path / "alarm-fleet.log", "wb"))

    async def main():
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_live(stop))
        loop = asyncio.get_running_loop()

        def raised():
            _, alarms, _ = hub.call("GET", "/api/v1/alarms?rule=channel_outage", expect=200)
            return [a for a in alarms["items"] if a["target"] == channel]

        alarms = await loop.run_in_executor(None, lambda: wait_for(raised, timeout=90, what=f"an outage alarm on {channel}"))
        a = alarms[-1]
        assert int(a["details"]["errorBoxes"]) >= 1 and float(a["details"]["share"]) >= 0.3
        if a["state"] == "raised":
            _, acked, _ = hub.call("POST", f"/api/v1/alarms/{a['id']}/ack", expect=200)
            assert acked["state"] == "acknowledged" and acked["acknowledgedBy"] == "bootstrap"
            assert spec_errors("Alarm", acked) == [] and spec_errors("Alarm", a) == []  # docs/openapi.yaml
            assert hub.call("POST", f"/api/v1/alarms/{a['id']}/ack")[0] == 200  # twice is harmless

        def cleared():
            _, alarms, _ = hub.call("GET", "/api/v1/alarms?rule=channel_outage&state=cleared", expect=200)
            return [x for x in alarms["items"] if x["target"] == channel]

        await loop.run_in_executor(None, lambda: wait_for(cleared, timeout=150, what="the outage alarm cleared"))
        stop.set()
        await watcher

    try:
        asyncio.run(asyncio.wait_for(main(), 300))
    finally:
        stop(p)
    assert any(m["state"] == "raised" and m["target"] == channel for m in seen_live), seen_live
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=alarm.acknowledge", expect=200)
    assert audit["items"]
