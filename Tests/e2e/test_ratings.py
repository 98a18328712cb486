"""Ratings end to end: real boxes (Python websockets) send viewing, the hub stores it, its leased
builder rolls it up, and the analyst API's answers equal an independent recomputation
(ratings_ref.py, written from docs/ratings-method.md alone) from the stored raw events.

Every box ends its viewing with `leave`, so no tune is open and the build's horizon does not
matter. Clocks are off by up to ±3 h per connection; placement uses each connection's offset as
stored on its events (`o`).
"""
import asyncio
import calendar
import datetime
import json
import random
import time
import urllib.error
import urllib.request

import pytest

import ratings_ref as ref
from helpers import connect, db_of, expect_ack, run, spec_errors

DAY_MS = 86_400_000
CHANNELS = ["news", "sport", "kids", "movies"]


def day_bounds():
    """Yesterday (UTC): whole and in the past, so every event is credited, not skewed."""
    today = int(time.time() * 1000) // DAY_MS
    return (today - 1) * DAY_MS, today * DAY_MS


def viewing(rng, start_ms, end_ms):
    """A random evening of one box in [start, end): tunes (some time-shifted), standby, and a
    final leave; times are hub times."""
    t = start_ms + rng.randrange(0, 3_600_000)
    out = []
    while t < end_ms - 7_200_000:
        r = rng.random()
        if r < 0.7:
            out.append({"event": "tune", "channel": rng.choice(CHANNELS), **({"mode": "timeshift"} if rng.random() < 0.1 else {})})
        elif r < 0.8:
            out.append({"event": "standby_on"})
        elif r < 0.9:
            out.append({"event": "standby_off"})
        else:
            out.append({"event": "play_start"})
        out[-1]["at"] = t
        t += rng.choice([5_000, 9_000, 11_000, 40_000, 150_000, 600_000, 1_800_000])
    out.append({"event": "leave", "at": t})
    return out


async def send_viewing(hub, device, secret, boot, clock_offset_ms, events, first_seq, model="argus-sim-1"):
    """One connection: hello stamped by a clock `clock_offset_ms` off, then the events in batches;
    returns the next seq. The box's `ts` are its own clock's."""
    ws = await connect(hub, device, secret)
    try:
        now = int(time.time() * 1000)
        await ws.send(json.dumps({"type": "hello", "id": "h", "ts": now + clock_offset_ms, "model": model,
                                  "firmware": "1.0.0", "bootId": boot}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
        seq = first_seq
        for k in range(0, len(events), 20):
            msgs = []
            for e in events[k:k + 20]:
                m = {"type": "event", "seq": seq, "ts": e["at"] + clock_offset_ms, "event": e["event"]}
                if "channel" in e:
                    m["channel"] = e["channel"]
                if "mode" in e:
                    m["mode"] = e["mode"]
                msgs.append(m)
                seq += 1
            await ws.send(json.dumps({"type": "batch", "id": f"b{seq}", "messages": msgs}))
        await expect_ack(ws, seq - 1)
        return seq
    finally:
        await ws.close()


def recompute(db, start, end, universe, bucket=None, devices=None):
    docs = [d for d in db.events.find({}) if devices is None or d["d"] in devices]
    by_box = ref.connections_from_docs(docs, lambda d: (0, d.get("o", 0)))
    credits = ref.credits_for_boxes(by_box, ref.Params(), horizon=end + DAY_MS)
    if bucket is None:
        return [(start, end, ref.measures(credits, ref.range_minutes(start, end), universe))]
    return [(b, b + ref.BUCKETS[bucket], m) for b, m in ref.series(credits, start, end, bucket, universe)]


def iso_minute(text):
    """An ISO time on a whole minute as minutes since 1970."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) // 60


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def compare(answer_rows, expected_rows):
    """Counts equal exactly; ratios and intervals to 1e-9 (same formula, different languages)."""
    assert len(answer_rows) == len(expected_rows), (len(answer_rows), len(expected_rows))
    for row, (_, _, exp) in zip(answer_rows, expected_rows):
        got = {c["channel"]: c for c in row["channels"]}
        want = {ch: m for ch, m in exp.items() if m.box_minutes > 0}
        assert sorted(got) == sorted(want), (row["from"], sorted(got), sorted(want))
        for ch, m in want.items():
            c = got[ch]
            where = f"{row['from']} {ch}"
            assert c["boxMinutes"] == m.box_minutes, where
            assert c["amr"] == pytest.approx(m.amr, abs=1e-9), where
            assert c["ratingPct"] == pytest.approx(m.rating * 100, abs=1e-9), where
            assert c["ratingInterval"]["lowerPct"] == pytest.approx(m.rating_ci[0] * 100, abs=1e-9), where
            assert c["ratingInterval"]["upperPct"] == pytest.approx(m.rating_ci[1] * 100, abs=1e-9), where
            assert c["sharePct"] == pytest.approx(m.share * 100, abs=1e-9), where
            if "reach" in c:
                assert (c["reach"], c["reach3"]) == (m.reach1, m.reach3), where
                assert c["reachInterval"]["upperPct"] == pytest.approx(m.reach1_ci[1] * 100, abs=1e-9), where
                assert c["atvMinutes"] == pytest.approx(m.atv, abs=1e-9), where


def model_of(i):
    """Boxes 0, 2, 4, 5, 6, … are `m-a`, boxes 1 and 3 `m-b`: a segment above k and one below."""
    return "m-b" if i in (1, 3) else "m-a"


def drive(hubs, boxes, rng):
    """Each box views yesterday evening in two connections (different boots and clocks); with two
    hubs, the second connection goes to the other node."""
    start, end = day_bounds()
    plans = [viewing(rng, start + 17 * 3_600_000, end) for _ in boxes]
    offsets = [(rng.randrange(-10_800_000, 10_800_000), rng.randrange(-10_800_000, 10_800_000)) for _ in boxes]

    async def one(i, device, secret):
        events = plans[i]
        half = len(events) // 2
        seq = await send_viewing(hubs[0], device, secret, f"{device}-a", offsets[i][0], events[:half], 1, model_of(i))
        await send_viewing(hubs[-1], device, secret, f"{device}-b", offsets[i][1], events[half:], seq, model_of(i))

    async def all_boxes():
        await asyncio.gather(*(one(i, d, s) for i, (d, s) in enumerate(boxes)))

    run(all_boxes(), timeout=120)
    # Acknowledged means spooled; wait until the applier has stored every event.
    db = db_of(hubs[0])
    sent = sum(len(p) for p in plans)
    deadline = time.time() + 60
    while db.events.count_documents({}) < sent and time.time() < deadline:
        time.sleep(0.2)
    assert db.events.count_documents({}) == sent
    # The offset stored with each event is the hub's measure of that connection's clock: hub time
    # of hello − its ts, i.e. minus the offset the box's clock was given (to the hello's latency).
    given = {f"{d}-{ab}": -offsets[i][k] for i, (d, _) in enumerate(boxes) for k, ab in enumerate("ab")}
    for e in db.events.find({}, {"b": 1, "o": 1}):
        assert abs(e["o"] - given[e["b"]]) < 2_000, (e, given[e["b"]])
    return start, end


def analyst(hub):
    _, t, _ = hub.call("POST", "/api/v1/tokens", {"name": "analyst", "role": "analyst"}, expect=201)
    return t["token"]


def wait_built(db, day, timeout):
    """Until the builder has read every stored event (its watermark) and built `day` after the
    newest one arrived."""
    newest = db.events.find_one(sort=[("r", -1)])["r"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = db.ratings_state.find_one({"_id": "builder"}) or {}
        built = db.ratings_days.find_one({"_id": day})
        if state.get("watermark") and state["watermark"] >= newest and built and built["builtAt"] >= newest:
            return
        time.sleep(0.3)
    raise AssertionError(f"day {day} not built after the newest event ({newest}) within {timeout} s")


def wait_agreement(hub, token, db, start, end, universe, bucket=None, timeout=90, segment=None, devices=None):
    """Polls until the build has caught up with every stored event, then compares."""
    q = f"/api/v1/ratings?from={iso(start)}&to={iso(end)}&universe=registered" + (f"&bucket={bucket}" if bucket else "")
    q += f"&segment={segment}" if segment else ""
    wait_built(db, start // DAY_MS, timeout)
    status, last, _ = hub.call("GET", q, token=token)
    assert status == 200 and last["daysBuilt"] == 1, last
    assert spec_errors("Ratings", last) == []  # populated rows, which the API fuzzer never reaches
    assert not any(c.get("suppressed") for r in last["series"] for c in r["channels"]), (last["universe"], last.get("segment"))
    expected = recompute(db, start, end, universe, bucket, devices)
    compare(last["series"], expected)
    return last


@pytest.fixture
def ratings_hub(make_hub):
    return make_hub(extra_args=["--ratings-build-seconds", "1"]).start()


def register(hub, n, prefix):
    return [(f"{prefix}-{i}", hub.register(f"{prefix}-{i}")) for i in range(n)]


def test_ratings_on_one_node_equal_the_recomputation(ratings_hub):
    rng = random.Random(11)
    boxes = register(ratings_hub, 8, "rt")
    start, end = drive([ratings_hub], boxes, rng)
    db = db_of(ratings_hub)
    token = analyst(ratings_hub)
    day = wait_agreement(ratings_hub, token, db, start, end, universe=8)
    assert day["universe"] == {"kind": "registered", "size": 8} and day["sampleSize"] == 8
    assert sum(c["boxMinutes"] for c in day["series"][0]["channels"]) > 0, "the scenario credits viewing"
    wait_agreement(ratings_hub, token, db, start, end, universe=8, bucket="hour")
    # A model segment: its boxes only, its registered boxes as the universe; one below k is suppressed.
    seg_a = {d for i, (d, _) in enumerate(boxes) if model_of(i) == "m-a"}
    a = wait_agreement(ratings_hub, token, db, start, end, universe=len(seg_a), segment="model:m-a", devices=seg_a)
    assert a["segment"] == "model:m-a" and a["universe"]["size"] == 6
    _, b, _ = ratings_hub.call("GET", f"/api/v1/ratings?from={iso(start)}&to={iso(end)}&segment=model:m-b", token=token, expect=200)
    assert b["universe"]["size"] == 2 and all(c.get("suppressed") for c in b["series"][0]["channels"])
    # The active universe: every box viewed that day.
    _, active, _ = ratings_hub.call("GET", f"/api/v1/ratings?from={iso(start)}&to={iso(end)}", token=token, expect=200)
    assert active["universe"] == {"kind": "active", "size": 8}
    # The per-box export: pseudonymous ids, the same credit per box as the recomputation.
    export_day = iso(start)[:10]
    status, text, headers = ratings_hub.call("GET", f"/api/v1/ratings/export?day={export_day}", token=token)
    assert status == 200 and headers["Content-Type"].startswith("text/csv"), text
    rows = [r.split(",") for r in text.strip().split("\n")[1:]]
    assert rows and all(len(r[0]) == 64 and r[0] not in {d for d, _ in boxes} for r in rows), "pseudonyms only"
    docs = list(db.events.find({}))
    credits = ref.credits_for_boxes(ref.connections_from_docs(docs, lambda d: (0, d.get("o", 0))), ref.Params(), horizon=end + DAY_MS)
    day_minutes = set(range(start // 60_000, end // 60_000))
    want = sorted(sorted((c.minute, c.channel, c.mode) for c in cs if c.minute in day_minutes) for cs in credits.values())
    by_id = {}
    for pid, minute, channel, mode in rows:
        by_id.setdefault(pid, []).append((iso_minute(minute), channel, mode))
    assert sorted(sorted(v) for v in by_id.values()) == [w for w in want if w]
    # The same day exports the same pseudonyms; the analyst's export is audited.
    assert ratings_hub.call("GET", f"/api/v1/ratings/export?day={export_day}", token=token)[1] == text
    _, audit, _ = ratings_hub.call("GET", "/api/v1/audit?action=ratings.export", expect=200)
    assert audit["items"][0]["target"] == export_day and audit["items"][0]["actor"] == "analyst"
    assert ratings_hub.call("GET", "/api/v1/ratings/export?day=yesterday", token=token)[0] == 400
    # CSV export: a row per channel, the same box-minutes.
    status, csv, headers = ratings_hub.call("GET", f"/api/v1/ratings?from={iso(start)}&to={iso(end)}&format=csv&universe=registered", token=token)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    lines = csv.strip().split("\n")
    assert lines[0].startswith("from,to,channel,box_minutes")
    assert {l.split(",")[2]: int(l.split(",")[3]) for l in lines[1:]} == {c["channel"]: c["boxMinutes"] for c in day["series"][0]["channels"]}


def test_ratings_on_two_nodes_with_boxes_moving_between_them(make_hub):
    a = make_hub(extra_args=["--ratings-build-seconds", "1"]).start()
    b = make_hub(extra_args=["--ratings-build-seconds", "1"], database=a.database, uri=a.uri).start()
    rng = random.Random(23)
    boxes = register(a, 7, "mv")
    start, end = drive([a, b], boxes, rng)
    db = db_of(a)
    token = analyst(a)
    day = wait_agreement(a, token, db, start, end, universe=7)
    # Either node answers the same from the shared rollups.
    _, on_b, _ = b.call("GET", f"/api/v1/ratings?from={iso(start)}&to={iso(end)}&universe=registered", token=token, expect=200)
    assert on_b["series"] == day["series"]
    # One build per day version, whichever node held the lease: the cells are those of one version.
    current = db.ratings_days.find_one({"_id": start // DAY_MS})["v"]
    assert {c["v"] for c in db.ratings_cells.find({"day": start // DAY_MS}, {"v": 1})} == {current}


def test_small_universes_are_suppressed_and_bad_questions_name_their_parameter(ratings_hub):
    rng = random.Random(5)
    boxes = register(ratings_hub, 3, "sm")
    start, end = drive([ratings_hub], boxes, rng)
    token = analyst(ratings_hub)
    db = db_of(ratings_hub)
    deadline = time.time() + 60
    while time.time() < deadline and not db.ratings_days.find_one({"_id": start // DAY_MS}):
        time.sleep(0.5)
    _, body, _ = ratings_hub.call("GET", f"/api/v1/ratings?from={iso(start)}&to={iso(end)}", token=token, expect=200)
    assert body["universe"]["size"] == 3 and body["k"] == 5
    assert body["notCredited"] == {"skewed": 0, "late": 0}
    assert body["series"][0]["channels"] and all(c == {"channel": c["channel"], "suppressed": True} for c in body["series"][0]["channels"])
    assert spec_errors("Ratings", body) == []
    for query, parameter in [
        ("from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
        ("from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
        ("from=noon&to=2026-12-01T00:00:00Z", "from"),
        (f"from={iso(start)}&to={iso(end)}&bucket=fortnight", "bucket"),
        (f"from={iso(start)}&to={iso(end)}&daypart=brunch", "daypart"),
        (f"from={iso(start)}&to={iso(end)}&segment=region", "segment"),
        (f"from={iso(start)}&to={iso(end)}&measures=amr,loyalty", "measures"),
    ]:
        status, err, _ = ratings_hub.call("GET", f"/api/v1/ratings?{query}", token=token)
        assert status == 400 and parameter in json.dumps(err), (query, status, err)
    # The per-box export of a universe below k has no rows.
    status, text, headers = ratings_hub.call("GET", f"/api/v1/ratings/export?day={iso(start)[:10]}", token=token)
    assert status == 200 and text.strip() == "box,minute,channel,mode" and headers["X-Argus-Suppressed"] == "fewer than 5 boxes"
    # A box whose clock jumps 2 h ahead after hello, and a resend from 3 days ago: both stored,
    # neither credited, both counted (with a credited leave, so today is rebuilt).
    device, secret = boxes[0]

    async def odd():
        ws = await connect(ratings_hub, device, secret)
        now = int(time.time() * 1000)
        await ws.send(json.dumps({"type": "hello", "id": "h", "ts": now, "model": "argus-sim-1", "firmware": "1.0.0", "bootId": "odd"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
        msgs = [{"type": "event", "seq": 1, "ts": now + 7_200_000, "event": "tune", "channel": "news"},
                {"type": "event", "seq": 2, "ts": now - 3 * DAY_MS, "event": "tune", "channel": "news"},
                {"type": "event", "seq": 3, "ts": now, "event": "leave"}]
        await ws.send(json.dumps({"type": "batch", "id": "odd", "messages": msgs}))
        await expect_ack(ws, 3)
        await ws.close()

    run(odd())
    wait_for_stored = time.time() + 30
    while db.events.count_documents({"b": "odd"}) < 3 and time.time() < wait_for_stored:
        time.sleep(0.2)
    assert db.events.count_documents({"b": "odd"}) == 3, "stored, even those not credited"
    wait_built(db, end // DAY_MS, 60)
    _, both, _ = ratings_hub.call("GET", f"/api/v1/ratings?from={iso(start)}&to={iso(end + DAY_MS)}", token=token, expect=200)
    assert both["notCredited"] == {"skewed": 1, "late": 1}, both["notCredited"]
    # Analysts see aggregates; without a token, nothing.
    assert ratings_hub.call("GET", f"/api/v1/ratings?from={iso(start)}&to={iso(end)}", token=False)[0] == 401
    # One box's viewing is for operators, and each read is audited; an analyst gets 403.
    assert ratings_hub.call("GET", f"/api/v1/devices/{device}/events", token=token)[0] == 403
    _, events, _ = ratings_hub.call("GET", f"/api/v1/devices/{device}/events?from={iso(start)}&to={iso(end + DAY_MS)}", expect=200)
    assert events["items"]
    _, audit, _ = ratings_hub.call("GET", "/api/v1/audit?action=device.events.read", expect=200)
    assert [(a["target"], a["result"]) for a in audit["items"]][:1] == [(device, "ok")]


def xmltv(start_ms, programmes):
    """An XMLTV document: programmes as (channel, start minute of the day, stop minute, title)."""
    def t(minute):
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(start_ms / 1000 + minute * 60)) + " +0000"
    body = "".join(f'<programme channel="{ch}" start="{t(a)}" stop="{t(b)}"><title lang="en">{title}</title></programme>'
                   for ch, a, b, title in programmes)
    chans = "".join(f'<channel id="{c}"><display-name>{c}</display-name></channel>' for c in CHANNELS + ["unknown-tv"])
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<tv>\n{chans}\n{body}\n</tv>\n'


def put_xmltv(hub, source, text, token=None):
    req = urllib.request.Request(f"{hub.api}/api/v1/epg/sources/{source}", data=text.encode(), method="PUT")
    req.add_header("Authorization", f"Bearer {token or hub.token}")
    req.add_header("Content-Type", "application/xml")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_epg_import_and_programme_ratings_equal_the_recomputation(ratings_hub):
    rng = random.Random(31)
    boxes = register(ratings_hub, 6, "pg")
    start, end = drive([ratings_hub], boxes, rng)
    db = db_of(ratings_hub)
    token = analyst(ratings_hub)
    wait_agreement(ratings_hub, token, db, start, end, universe=6)
    progs = [("news", 17 * 60, 19 * 60, "Evening News"), ("sport", 19 * 60 + 5, 21 * 60 + 50, "Cup Final"),
             ("kids", 18 * 60, 20 * 60, "Cartoons"), ("movies", 20 * 60, 23 * 60 + 30, "Late Film")]
    status, result = put_xmltv(ratings_hub, "main", xmltv(start, progs))
    assert status == 200, result
    assert result["programmes"] == 4 and result["unmapped"] == ["unknown-tv"], result
    # A malformed feed is refused with its line, and the previous EPG stays.
    status, err = put_xmltv(ratings_hub, "main", xmltv(start, progs).replace("</tv>", "<programme></tv>"))
    assert status == 400 and "line 5" in err["error"]["message"], err
    _, sources, _ = ratings_hub.call("GET", "/api/v1/epg/sources", token=token, expect=200)
    assert [(s["id"], s["version"], s["programmes"]) for s in sources["items"]] == [("main", 1, 4)]
    # Analysts cannot import.
    assert put_xmltv(ratings_hub, "main", xmltv(start, progs), token=token)[0] == 403
    _, answer, _ = ratings_hub.call("GET", f"/api/v1/ratings/programmes?from={iso(start)}&to={iso(end)}&universe=registered",
                                    token=token, expect=200)
    assert [p["title"] for p in answer["programmes"]] == ["Evening News", "Cartoons", "Cup Final", "Late Film"]
    assert spec_errors("ProgrammeRatings", answer) == [] and spec_errors("EPGSourceList", sources) == []
    # The recomputation: each slot's credited box-minutes of its channel, from the stored events.
    docs = list(db.events.find({}))
    credits = ref.credits_for_boxes(ref.connections_from_docs(docs, lambda d: (0, d.get("o", 0))), ref.Params(), horizon=end + DAY_MS)
    for p, (ch, a, b, title) in zip(sorted(answer["programmes"], key=lambda p: p["start"]), sorted(progs, key=lambda x: x[1])):
        slot = set(range(start // 60_000 + a, start // 60_000 + b))
        mine = sum(1 for cs in credits.values() for c in cs if c.channel == ch and c.minute in slot)
        every = sum(1 for cs in credits.values() for c in cs if c.minute in slot)
        assert (p["title"], p["minutes"], p["boxMinutes"]) == (title, len(slot), mine), p
        assert p["amr"] == pytest.approx(mine / len(slot), abs=1e-9)
        assert p["ratingPct"] == pytest.approx(mine / len(slot) / 6 * 100, abs=1e-9)
        if every:
            assert p["sharePct"] == pytest.approx(mine / every * 100, abs=1e-9)
        if a % 60 == 0 and b % 60 == 0:
            assert p["reach"] == sum(1 for cs in credits.values() if any(c.channel == ch and c.minute in slot for c in cs))
        else:
            assert "reach" not in p
    # Search by title, and the top programme of the day.
    _, found, _ = ratings_hub.call("GET", f"/api/v1/ratings/programmes?from={iso(start)}&to={iso(end)}&title=film", token=token, expect=200)
    assert [p["title"] for p in found["programmes"]] == ["Late Film"]
    _, top, _ = ratings_hub.call("GET", f"/api/v1/ratings/programmes?from={iso(start)}&to={iso(end)}&top=1&universe=registered",
                                 token=token, expect=200)
    assert top["programmes"][0]["amr"] == max(p["amr"] for p in answer["programmes"])


def test_epg_from_a_url_on_a_schedule_keeps_the_last_good_guide(make_hub):
    """--epg-source fetches every --epg-refresh-seconds: a good guide is imported; a 404 or a
    malformed guide changes nothing and is shown as the source's lastError."""
    import http.server
    import threading

    start, _ = day_bounds()
    state = {"status": 200, "body": xmltv(start, [("news", 60, 120, "Early News")]).encode()}

    class Guide(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/xml")
            self.end_headers()
            self.wfile.write(state["body"] if state["status"] == 200 else b"gone")

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Guide)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/guide.xml"
        hub = make_hub(extra_args=["--epg-source", f"main={url}", "--epg-refresh-seconds", "1"]).start()

        def source():
            _, body, _ = hub.call("GET", "/api/v1/epg/sources", expect=200)
            return body["items"][0] if body["items"] else None

        def wait(pred, what):
            deadline = time.time() + 30
            while time.time() < deadline:
                s = source()
                if s and pred(s):
                    return s
                time.sleep(0.2)
            raise AssertionError(f"{what}: {source()}")

        s = wait(lambda s: s["version"] >= 1 and s.get("lastFetchAt") and s.get("lastError") is None, "the guide imported")
        assert s["programmes"] == 1 and s["url"] == url
        version = s["version"]
        fetched = s["lastFetchAt"]
        s = wait(lambda s: s["lastFetchAt"] != fetched, "fetched again")
        assert s["version"] == version, "an unchanged guide is not imported again"
        state["status"] = 404
        s = wait(lambda s: "HTTP 404" in (s.get("lastError") or ""), "the 404 recorded")
        assert s["programmes"] == 1
        state.update(status=200, body=b"<tv><programme start='x'></tv>")
        s = wait(lambda s: "xmltv: line" in (s.get("lastError") or ""), "the malformed guide recorded")
        assert s["programmes"] == 1 and s["version"] == version
        db = db_of(hub)
        assert [p["title"] for p in db.epg_programmes.find({})] == ["Early News"], "the last good guide stays"
    finally:
        server.shutdown()
