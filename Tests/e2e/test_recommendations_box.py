"""Recommendations for the box itself (protocol 1.2) and factors trained elsewhere, end to end:
`argus-hub recommend import` stores CSV and .npy factors as the served version; the operator
API answers from them as their scores say; a box asks over its WebSocket and gets exactly the
API's answer; its requests are bounded and refused as protocol errors; malformed factors are
refused with their file and line, and the served version stays.
"""
import asyncio
import json
import subprocess

import numpy as np

from conftest import bin_dir
from helpers import connect_and_hello, next_frame, run


def recommend_cli(hub, *args):
    return subprocess.run([str(bin_dir() / "argus-hub"), "recommend", *args, "--mongodb-uri", hub.uri],
                          capture_output=True, text=True, timeout=120)


def write_csv(path, ids, matrix, header=True):
    with open(path, "w") as f:
        if header:
            f.write("id," + ",".join(f"f{k}" for k in range(matrix.shape[1])) + "\n")
        for i, row in zip(ids, matrix):
            f.write(i + "," + ",".join(repr(float(x)) for x in row) + "\n")


def test_imported_factors_are_served_alike_to_the_api_and_to_the_box(make_hub, tmpdir_path):
    hub = make_hub().start()
    secret = hub.register("imp-0", model="imp-model")
    hub.register("imp-1", model="imp-model")
    rng = np.random.default_rng(3)
    users = ["imp-0", "imp-1", "elsewhere-9"]
    items = [f"ch-{i}" for i in range(30)]
    U = rng.normal(size=(len(users), 8)).astype(np.float32)
    V = rng.normal(size=(len(items), 8)).astype(np.float32)
    write_csv(tmpdir_path / "users.csv", users, U)
    np.save(tmpdir_path / "items.npy", V)
    (tmpdir_path / "items.ids").write_text("\n".join(items) + "\n")

    r = recommend_cli(hub, "import", "--users", str(tmpdir_path / "users.csv"), "--items", str(tmpdir_path / "items.npy"),
                      "--item-ids", str(tmpdir_path / "items.ids"), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["promoted"] and report["boxes"] == 3 and report["items"] == 30 and report["factors"] == 8, report
    assert report["unknownBoxes"] == 1 and report["unknownBoxSample"] == ["elsewhere-9"], report
    assert report["unknownItems"] == 30 and report["boxesWithViewing"] == 0, report  # no viewing stored yet
    _, status, _ = hub.call("GET", "/api/v1/recommendations/status", expect=200)
    assert status["current"] == report["version"]
    assert next(v for v in status["versions"] if v["version"] == report["version"])["source"] == "import"
    audit = hub.call("GET", "/api/v1/audit?action=recommendations.import", expect=200)[1]
    assert any(e["target"] == str(report["version"]) for e in audit["items"]), audit

    # The API: the box's best-scored channels (x_u·y_i), each "for you" (it has no viewing here).
    _, rest, _ = hub.call("GET", "/api/v1/devices/imp-0/recommendations?n=5", expect=200)
    scores = V @ U[0]
    best = [items[i] for i in np.argsort(-scores, kind="stable")[:5]]
    assert not rest["coldStart"] and rest["modelVersion"] == report["version"], rest
    assert [i["channel"] for i in rest["items"]] == best, (rest, best)
    assert all(i["reason"]["kind"] == "for_you" for i in rest["items"]), rest
    for item in rest["items"]:
        assert abs(item["score"] - float(scores[items.index(item["channel"])])) < 1e-4, item

    async def box():
        ws = await connect_and_hello(hub, "imp-0", secret)
        try:
            # The same answer as the API, under `result`, with the request's id as `ref`.
            await ws.send(json.dumps({"type": "recommendations", "id": "r-1", "n": 5}))
            answer = await next_frame(ws, lambda m: m.get("ref") == "r-1", what="the recommendations answer")
            assert answer["type"] == "recommendations" and answer["result"] == rest, answer
            await ws.send(json.dumps({"type": "recommendations", "id": "r-bad", "n": 0}))
            bad = await next_frame(ws, lambda m: m.get("ref") == "r-bad", what="the refusal of n = 0")
            assert bad["type"] == "error" and bad["code"] == "invalid_field" and bad["field"] == "n", bad
            # Bounded: one at a time, five in a burst, then one every 5 s. Eight at once: at most
            # four more are answered (one token was spent above), the rest refused as rate_limited.
            for k in range(8):
                await ws.send(json.dumps({"type": "recommendations", "id": f"q-{k}", "n": 2}))
            # Refusals come at once, answers when ready: one reply for each, in any order.
            by_ref = {}
            while len(by_ref) < 8:
                m = await next_frame(ws, lambda m: str(m.get("ref", "")).startswith("q-"), what="a reply to q-*")
                assert m["ref"] not in by_ref, m
                by_ref[m["ref"]] = m
            replies = [by_ref[f"q-{k}"] for k in range(8)]
            answered = [m for m in replies if m["type"] == "recommendations"]
            refused = [m for m in replies if m["type"] == "error"]
            assert 1 <= len(answered) <= 4 and len(answered) + len(refused) == 8, replies
            assert all(m["code"] == "rate_limited" for m in refused), refused
            assert all(m["result"]["items"] == rest["items"][:2] for m in answered), answered
            # The session is still fine.
            await ws.send(json.dumps({"type": "ping", "id": "still"}))
            await next_frame(ws, lambda m: m.get("ref") == "still", what="pong")
        finally:
            await ws.close()
    run(box(), timeout=60)

    # Malformed factors are refused with their file and line, and nothing changes.
    (tmpdir_path / "bad.csv").write_text("id,f0,f1\nimp-0,0.5,1.0\nimp-1,0.25,nan\n")
    (tmpdir_path / "items2.csv").write_text("ch-0,1,2\nch-1,3,4\n")
    r = recommend_cli(hub, "import", "--users", str(tmpdir_path / "bad.csv"), "--items", str(tmpdir_path / "items2.csv"))
    assert r.returncode != 0 and f"{tmpdir_path / 'bad.csv'}:3: factor 2 is nan, not finite" in r.stderr, r.stderr
    r = recommend_cli(hub, "import", "--users", str(tmpdir_path / "users.csv"), "--items", str(tmpdir_path / "items2.csv"))
    assert r.returncode != 0 and "users have 8 factors and items 2: they must agree" in r.stderr, r.stderr
    r = recommend_cli(hub, "import", "--users", str(tmpdir_path / "users.csv"), "--items", str(tmpdir_path / "items.npy"))
    assert r.returncode != 0 and "--item-ids is required" in r.stderr, r.stderr
    _, after, _ = hub.call("GET", "/api/v1/recommendations/status", expect=200)
    assert after["current"] == report["version"] and [v["version"] for v in after["versions"]] == [v["version"] for v in status["versions"]]
    hub.call("GET", "/api/v1/devices/imp-0/recommendations?n=5", expect=200)

    # Another import, not promoted, then promoted by hand; an unknown version is refused.
    r = recommend_cli(hub, "import", "--users", str(tmpdir_path / "users.csv"), "--items", str(tmpdir_path / "items.npy"),
                      "--item-ids", str(tmpdir_path / "items.ids"), "--no-promote", "--json")
    assert r.returncode == 0, r.stderr
    second = json.loads(r.stdout)
    assert not second["promoted"] and second["version"] == report["version"] + 1, second
    assert hub.call("GET", "/api/v1/recommendations/status", expect=200)[1]["current"] == report["version"]
    r = recommend_cli(hub, "promote", "999")
    assert r.returncode != 0 and "no model version 999" in r.stderr, r.stderr
    r = recommend_cli(hub, "promote", str(second["version"]))
    assert r.returncode == 0, r.stderr
    assert hub.call("GET", "/api/v1/recommendations/status", expect=200)[1]["current"] == second["version"]
    audit = hub.call("GET", "/api/v1/audit?action=recommendations.promote", expect=200)[1]
    assert [e["target"] for e in audit["items"]] == [str(second["version"])], audit
