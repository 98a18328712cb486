"""Recommendations end to end: boxes with planted tastes (four groups of eight channels, plus a
channel everyone watches) send a day of viewing; a training requested through the API reads it
from the store, evaluates on a time holdout, stores and promotes a version; a box then gets the
unwatched channels of its own group, each with "because you watched" one of its channels; a box
with no history gets the popular channels of its model; an unknown box is a 404; the answer is
for operators, and each read is audited.
"""
import asyncio
import os
import random
import time

import pymongo

from conftest import wait_for
from helpers import run, spec_errors
from test_ratings import analyst, day_bounds, send_viewing

GROUPS = {g: [f"{g}{i}" for i in range(8)] for g in "pqrs"}


def test_a_trained_model_recommends_each_boxs_own_taste_and_cold_starts_with_the_popular(make_hub):
    # Five tastes (four groups and one channel for all): a few factors, as the data has few dimensions.
    hub = make_hub(extra_args=["--recommend-factors", "5"]).start()
    start, _ = day_bounds()
    rng = random.Random(7)
    boxes = []
    for i in range(40):
        group = "pqrs"[i % 4]
        boxes.append((f"rec-{i}", hub.register(f"rec-{i}", model="taste-1"), group))

    async def drive():
        for n, (device, secret, group) in enumerate(boxes):
            channels = GROUPS[group][:]
            rng.shuffle(channels)
            # `all` first, then six of the group's channels; the latest ones are held out.
            t = start + 18 * 3_600_000 + n * 60_000
            events = []
            for ch in ["all"] + channels[:6]:
                events.append({"event": "tune", "channel": ch, "at": t})
                t += rng.choice([15, 20, 30]) * 60_000
            events.append({"event": "leave", "at": t})
            await send_viewing(hub, device, secret, "boot-1", 0, events, 1, model="taste-1")
    run(drive(), timeout=180)
    newcomer = hub.register("rec-new", model="taste-1")
    assert newcomer

    status, body, _ = hub.call("POST", "/api/v1/recommendations/train")
    assert status == 202, body
    db = pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]

    def trained():
        _, s, _ = hub.call("GET", "/api/v1/recommendations/status", expect=200)
        p = s.get("progress") or {}
        done = [v for v in s["versions"] if v.get("alsP10") is not None]
        return s if done and s.get("current") and p.get("phase") == "done" else None
    wait_for(trained, timeout=120, what="a trained, promoted model")
    status = trained()
    v = next(v for v in status["versions"] if v["version"] == status["current"])
    assert v["promoted"] and v["boxes"] == 40 and v["items"] == 33, v
    assert v["alsP10"] >= 1.5 * v["popularityP10"], v
    p = status["progress"]
    assert p["iteration"] == p["iterations"] and p["loss"] is not None

    # A box gets the two channels of its own group it has not watched, each because of one it did.
    device, _, group = boxes[0]
    _, recs, _ = hub.call("GET", f"/api/v1/devices/{device}/recommendations?n=2", expect=200)
    assert not recs["coldStart"] and recs["modelVersion"] == status["current"]
    # A trained model's answers, which the API fuzzer never reaches, match docs/openapi.yaml.
    assert spec_errors("Recommendations", recs) == [] and spec_errors("RecommendStatus", status) == []
    watched = set(db.events.distinct("ch", {"d": device}))
    assert {i["channel"] for i in recs["items"]} == set(GROUPS[group]) - watched, (recs, watched)
    for item in recs["items"]:
        assert item["reason"]["kind"] == "because_you_watched" and item["reason"]["channel"] in watched, item

    # No history: the popular channels of its model ("all" first), not an error.
    _, cold, _ = hub.call("GET", "/api/v1/devices/rec-new/recommendations?n=5", expect=200)
    assert cold["coldStart"] and cold["items"][0]["channel"] == "all" and spec_errors("Recommendations", cold) == []
    assert all(i["reason"]["kind"] == "popular_in_segment" for i in cold["items"]), cold

    hub.call("GET", "/api/v1/devices/nobody/recommendations", expect=404)
    hub.call("GET", f"/api/v1/devices/{device}/recommendations?n=0", expect=400)
    token = analyst(hub)
    hub.call("GET", f"/api/v1/devices/{device}/recommendations", token=token, expect=403)
    hub.call("GET", "/api/v1/recommendations/status", token=token, expect=200)
    hub.call("POST", "/api/v1/recommendations/train", token=token, expect=403)
    wait_for(lambda: db.audit.count_documents({"action": "device.recommendations.read", "target": device}) >= 1,
             timeout=10, what="the read audited")
