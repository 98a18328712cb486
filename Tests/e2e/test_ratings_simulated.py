"""Simulated days: a fleet of C agents (stb-agent --fleet, --clock-speed 1440: a simulated day is
a real minute) against a hub whose clock runs at the same speed (--clock-speed, --clock-start),
so the offset measured at `hello` stays right and the simulated days are credited like real
ones. Then the hub's ratings show what the viewing model puts in: the evening peak, Zipf
popularity in the order of the channel list, a forced one-hour outage of the most popular
channel as a dip against the same hour on the other days, and a segment below k suppressed.
"""
import asyncio
import calendar
import json
import os
import subprocess
import time

import pymongo

from conftest import ROOT, bin_dir, wait_for
from helpers import connect
from test_ratings import analyst, iso

SPEED = 1440  # a simulated day per real minute
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def ms(dt):
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


def channel_list():
    out = []
    for line in (ROOT / "data/channels.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split()[0])
    return out


async def hub_time(hub, device, secret):
    """The hub's simulated now, from a `welcome`'s serverTime, and the real time it was read."""
    ws = await connect(hub, device, secret)
    try:
        await ws.send(json.dumps({"type": "hello", "id": "h", "ts": int(time.time() * 1000), "bootId": "probe",
                                  "model": "probe", "firmware": "1.0.0"}))
        sent = time.time()
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        got = time.time()
        assert welcome["type"] == "welcome", welcome
        return welcome["serverTime"], (sent + got) / 2
    finally:
        await ws.close()


def register_fleet(hub, n, prefix, model, path):
    env = dict(os.environ, ARGUS_API=hub.api, ARGUS_TOKEN=hub.token)
    subprocess.run([str(ROOT / "scripts/register-fleet"), str(n), prefix, str(path), "--model", model], env=env, cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, timeout=60)


def ratings(hub, token, frm, to, **params):
    q = f"/api/v1/ratings?from={iso(frm)}&to={iso(to)}" + "".join(f"&{k}={v}" for k, v in params.items())
    status, body, _ = hub.call("GET", q, token=token)
    assert status == 200, body
    return body


def minutes(row, channel):
    return next((c.get("boxMinutes", 0) for c in row["channels"] if c["channel"] == channel), 0)


def test_simulated_days_show_the_peak_zipf_order_an_outage_dip_and_suppression(make_hub, tmpdir_path):
    today = int(time.time() * 1000) // DAY_MS
    begin = (today - 3) * DAY_MS + 18 * HOUR_MS + 30 * 60_000  # 18:30 UTC three days ago
    hub = make_hub(extra_args=["--ratings-build-seconds", "2", "--rating-segments", "model", "--clock-speed", str(SPEED),
                               "--clock-start", iso(begin - 10 * 60_000)]).start()
    big, tiny = tmpdir_path / "big.secrets", tmpdir_path / "tiny.secrets"
    register_fleet(hub, 40, "sim", "argus-sim-1", big)
    register_fleet(hub, 3, "tiny", "tiny-2", tiny)
    probe = hub.register("probe")
    server, real = asyncio.run(hub_time(hub, "probe", probe))
    # Both fleets start at the hub's simulated now, so the day curve lands on the hub's hours.
    lead = 1.0
    start_ms = server + int((time.time() + lead - real) * 1000 * SPEED)
    end_ms = (today - 1) * DAY_MS + 20 * HOUR_MS
    duration = max(30, int((end_ms - start_ms) / SPEED / 1000) + 1)
    common = ["--hub", hub.ws_url, "--clock-speed", str(SPEED), "--seed", "11", "--start", str(start_ms // 1000),
              "--duration", str(duration), "--force-outage", "0", "--outage-minutes", "60", "--ramp", "500", "-q"]
    time.sleep(max(0.0, real + lead - time.time()))
    procs = [subprocess.Popen([str(bin_dir() / "stb-agent"), "--fleet", str(n), "--id-prefix", prefix, "--secrets-file", str(f),
                               "--model", model, "--state-dir", str(tmpdir_path / prefix), *common],
                              stdout=open(tmpdir_path / f"{prefix}.log", "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
             for n, prefix, f, model in [(40, "sim", big, "argus-sim-1"), (3, "tiny", tiny, "tiny-2")]]
    try:
        for p in procs:
            assert p.wait(timeout=duration + 60) == 0, (tmpdir_path / "sim.log").read_text()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    db = pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]
    last = ms(db.events.find_one(sort=[("r", -1)])["r"])
    # Final once the builder has read every event and built each day after its last tune could
    # still be open: its end (or the last event) + the 4 h cap, in simulated time.
    days = range(today - 3, today)

    def final():
        state = db.ratings_state.find_one({"_id": "builder"}) or {}
        built = {d["_id"]: ms(d["builtAt"]) for d in db.ratings_days.find({"_id": {"$in": list(days)}})}
        return ("watermark" in state and ms(state["watermark"]) >= last and len(built) == 3
                and all(at > min(last, (d + 1) * DAY_MS) + 4 * HOUR_MS for d, at in built.items()))
    wait_for(final, timeout=90, what="the simulated days built after their last tune's cap")
    token = analyst(hub)
    channels = channel_list()
    frm, to = (today - 3) * DAY_MS + 19 * HOUR_MS, (today - 1) * DAY_MS + 19 * HOUR_MS  # two whole days of viewing

    # The evening peak: the busiest hour of day (summed over both days) is in the evening.
    hourly = ratings(hub, token, frm, to, bucket="hour", measures="amr")
    by_hour = [0] * 24
    for row in hourly["series"]:
        h = int(row["from"][11:13])
        by_hour[h] += sum(c.get("boxMinutes", 0) for c in row["channels"])
    peak = max(range(24), key=lambda h: by_hour[h])
    assert 17 <= peak <= 21, by_hour
    assert by_hour[peak] > 4 * max(by_hour[2], by_hour[3], by_hour[4]), by_hour

    # Zipf: the channels watched most are the list's most popular.
    top = ratings(hub, token, frm, to, top=5, measures="amr,share,reach")
    order = [c["channel"] for c in top["series"][0]["channels"]]
    assert order[0] in channels[:2], (order, channels[:5])
    assert all(ch in channels[:12] for ch in order[:3]), (order, channels[:12])

    # The forced outage (channel 0, one simulated hour from a minute after the fleet's start).
    outage_from = start_ms + 60_000 + 5 * 60_000
    outage_to = start_ms + 60 * 60_000  # inside the outage, whole minutes
    outage_from -= outage_from % 60_000
    outage_to -= outage_to % 60_000
    during = ratings(hub, token, outage_from, outage_to, channels=channels[0], measures="amr")
    same_hours = [ratings(hub, token, outage_from + k * DAY_MS, outage_to + k * DAY_MS, channels=channels[0], measures="amr")
                  for k in (1, 2)]
    dip = minutes(during["series"][0], channels[0])
    usual = [minutes(a["series"][0], channels[0]) for a in same_hours]
    assert min(usual) >= 30, usual
    assert dip < 0.35 * min(usual), (dip, usual)

    # Segments: the three-box model is below k = 5 and suppressed; the forty-box one is not.
    small = ratings(hub, token, frm, to, segment="model:tiny-2")
    assert small["universe"]["size"] == 3 and small["series"][0]["channels"], small["universe"]
    assert all(c.get("suppressed") is True and "amr" not in c for c in small["series"][0]["channels"])
    large = ratings(hub, token, frm, to, segment="model:argus-sim-1")
    assert large["universe"]["size"] == 40
    assert not any(c.get("suppressed") for c in large["series"][0]["channels"])
