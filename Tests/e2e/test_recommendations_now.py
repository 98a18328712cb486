"""Recommendations of what is on now (issue 15, "Serving"): a channel whose audience of the last
15 built minutes rises against its own baseline (the same daypart on the previous built days) is
trending, with a minimum audience; a channel watched as much as usual is not. Programmes on now
or starting within the horizon (EPG) are recommended, trending ones first, and later ones are
not; what the box watches now is left out; a box with no history (cold start) gets trending and
its segment's popular channels, not an error.
"""
import asyncio
import os
import time

import pymongo

from conftest import wait_for
from helpers import run
from test_ratings import put_xmltv, send_viewing

MIN = 60_000
HOUR = 3_600_000


def guide(programmes, channels=("rising", "steady", "other", "a", "b")):
    def t(ms):
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(ms / 1000)) + " +0000"
    chans = "".join(f'<channel id="{c}"><display-name>{c}</display-name></channel>' for c in channels)
    body = "".join(f'<programme channel="{ch}" start="{t(a)}" stop="{t(b)}"><title lang="en">{title}</title></programme>'
                   for ch, a, b, title in programmes)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<tv>\n{chans}\n{body}\n</tv>\n'


def test_trending_and_programmes_on_now(make_hub):
    hub = make_hub(extra_args=["--ratings-build-seconds", "1", "--recommend-factors", "3"]).start()
    now = int(time.time() * 1000)
    boxes = [(f"now-{i}", hub.register(f"now-{i}", model="now-1")) for i in range(12)]

    async def drive():
        for i, (device, secret) in enumerate(boxes):
            events = []
            if i < 10:
                # Yesterday, around this time of day (18 h, re-tuned every 2 h): the steady channel's baseline.
                for t in range(now - 33 * HOUR + i * MIN, now - 15 * HOUR, 2 * HOUR):
                    events.append({"event": "tune", "channel": "steady", "at": t})
                events.append({"event": "leave", "at": now - 15 * HOUR})
            # Now: eight boxes on the rising channel, four on the steady one, for the last 20 minutes.
            events.append({"event": "tune", "channel": "rising" if i < 8 else "steady", "at": now - 20 * MIN - i * 1000})
            await send_viewing(hub, device, secret, "boot-1", 0, events, 1, model="now-1")
    run(drive(), timeout=120)
    newcomer = hub.register("now-new", model="now-1")
    assert newcomer
    status, result = put_xmltv(hub, "main", guide([
        ("rising", now - HOUR, now + HOUR, "The Final"),
        ("steady", now - 30 * MIN, now + 30 * MIN, "Evening News"),
        ("other", now + 30 * MIN, now + 90 * MIN, "Late Film"),
        ("steady", now + 3 * HOUR, now + 4 * HOUR, "Tomorrow's Show"),
    ]))
    assert status == 200, result

    db = pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]
    sent = 10 * (len(range(0, 18 * HOUR, 2 * HOUR)) + 2) + 2
    wait_for(lambda: db.events.count_documents({}) >= sent, timeout=60, what="the viewing stored")
    newest = db.events.find_one(sort=[("r", -1)])["r"]
    today = now // 86_400_000

    def built():
        day = db.ratings_days.find_one({"_id": today})
        return day and day["builtAt"] > newest
    wait_for(built, timeout=60, what="today built after the newest event")
    hub.call("POST", "/api/v1/recommendations/train", expect=202)
    wait_for(lambda: hub.call("GET", "/api/v1/recommendations/status", expect=200)[1].get("current"), timeout=60, what="a model")

    # A box on the steady channel: the rising channel is trending (8 now against no baseline), the
    # steady one (4 against about 10) is not, and is left out as the box watches it.
    _, recs, _ = hub.call("GET", "/api/v1/devices/now-9/recommendations?n=5", expect=200)
    assert recs.get("watching") == "steady", recs
    assert recs["items"][0] == {"channel": "rising", "reason": {"kind": "trending"}}, recs
    assert all(i["channel"] != "steady" for i in recs["items"]), recs
    assert recs["horizonMinutes"] == 60
    titles = [p["title"] for p in recs["programmes"]]
    assert titles[0] == "The Final" and recs["programmes"][0]["reason"]["kind"] == "trending", recs
    assert recs["programmes"][0]["onNow"] is True
    assert "Evening News" not in titles and "Tomorrow's Show" not in titles, titles

    # A box on the rising channel: it is left out; the steady channel's programme is offered.
    _, recs, _ = hub.call("GET", "/api/v1/devices/now-0/recommendations?n=5", expect=200)
    assert recs.get("watching") == "rising", recs
    assert all(i["channel"] != "rising" for i in recs["items"]), recs
    assert "The Final" not in [p["title"] for p in recs["programmes"]], recs

    # Cold start: trending first, then the segment's popular channels; an answer, not an error.
    _, recs, _ = hub.call("GET", "/api/v1/devices/now-new/recommendations?n=5", expect=200)
    assert recs["coldStart"] and "watching" not in recs, recs
    assert [i["reason"]["kind"] for i in recs["items"]][:2] == ["trending", "popular_in_segment"], recs
    assert recs["items"][0]["channel"] == "rising"
    by_title = {p["title"]: p for p in recs["programmes"]}
    assert by_title["The Final"]["reason"]["kind"] == "trending"
    assert by_title["Evening News"]["reason"]["kind"] == "popular_in_segment"
    assert "Late Film" not in by_title  # nobody watches "other": not popular, not trending
    assert by_title["Evening News"]["onNow"] is True


def test_the_programme_model_follows_a_series_to_another_channel(make_hub):
    """Boxes that watched a series yesterday are offered it today on another channel, ahead of a
    programme on the channel they watched, because of that series (the box × programme model)."""
    hub = make_hub(extra_args=["--ratings-build-seconds", "1", "--recommend-factors", "2"]).start()
    now = int(time.time() * 1000)
    day = now // 86_400_000
    evening = (day - 1) * 86_400_000 + 18 * HOUR  # yesterday 18:00 UTC
    cooks = [(f"cook-{i}", hub.register(f"cook-{i}", model="now-1")) for i in range(6)]
    fans = [(f"fan-{i}", hub.register(f"fan-{i}", model="now-1")) for i in range(6)]

    async def drive():
        for group, channel in [(cooks, "a"), (fans, "b")]:
            for i, (device, secret) in enumerate(group):
                # 18:00-19:30: all of the first programme, half an hour of the second (weighed x0.5);
                # then 20 minutes of a channel with no guide (each box has two channels to hold out).
                events = [{"event": "tune", "channel": channel, "at": evening + i * 1000},
                          {"event": "tune", "channel": "z", "at": evening + 90 * MIN},
                          {"event": "leave", "at": evening + 110 * MIN}]
                await send_viewing(hub, device, secret, "boot-1", 0, events, 1, model="now-1")
    run(drive(), timeout=120)
    status, result = put_xmltv(hub, "main", guide([
        ("a", evening, evening + HOUR, "Cooking Show"), ("a", evening + HOUR, evening + 2 * HOUR, "Quiz Night"),
        ("b", evening, evening + HOUR, "Football"), ("b", evening + HOUR, evening + 2 * HOUR, "Drama"),
        # Now: the cooking series on b, football on a.
        ("b", now - 10 * MIN, now + 50 * MIN, "Cooking Show"), ("a", now - 10 * MIN, now + 50 * MIN, "Football"),
    ]))
    assert status == 200, result
    db = pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]
    wait_for(lambda: db.events.count_documents({}) >= 36, timeout=60, what="the viewing stored")
    newest = db.events.find_one(sort=[("r", -1)])["r"]
    wait_for(lambda: (db.ratings_days.find_one({"_id": day - 1}) or {}).get("builtAt", newest) > newest, timeout=60,
             what="yesterday built after the newest event")
    _, before, _ = hub.call("GET", "/api/v1/recommendations/status", expect=200)
    hub.call("POST", "/api/v1/recommendations/train", expect=202)

    def trained():
        _, s, _ = hub.call("GET", "/api/v1/recommendations/status", expect=200)
        p = s.get("progress") or {}
        if p.get("startedAt") == (before.get("progress") or {}).get("startedAt"):
            return None
        assert p.get("phase") != "failed", p
        return s if s.get("current") and p.get("phase") == "done" else None
    wait_for(trained, timeout=60, what="a model")
    version = db.recommend_models.find_one({"_id": trained()["current"]})
    assert sorted(version["programme"]["items"]) == ["Cooking Show", "Drama", "Football", "Quiz Night"], version.get("programme")

    _, recs, _ = hub.call("GET", "/api/v1/devices/cook-0/recommendations?n=5", expect=200)
    first = recs["programmes"][0]
    assert (first["title"], first["channel"]) == ("Cooking Show", "b"), recs
    assert first["reason"] == {"kind": "because_you_watched", "programme": "Cooking Show"}, first
    _, recs, _ = hub.call("GET", "/api/v1/devices/fan-0/recommendations?n=5", expect=200)
    assert (recs["programmes"][0]["title"], recs["programmes"][0]["channel"]) == ("Football", "a"), recs
