"""What an outside implementer reads in the docs, pinned (issue 14, item 6).

A client written from docs/protocol.md, docs/commands.md and the README alone found
behaviours the docs did not state. Each test here pins one of them as it is now documented
(docs/protocol.md, docs/commands.md, docs/api.md): the API's response bodies and list
wrappers, the `limit` ranges, the default time range of events and logs, how `received` maps
to an execution's state, what an ack covers in a batch with an invalid member, one
`fragmented_frame` per WebSocket frame, `seq` on hello and ping, and the nesting limit of 32.
"""
import asyncio
import json
import os
import re
import time

import pymongo
import websockets

from conftest import basic, wait_for

EXECUTION_STATES = ["QUEUED", "SENT", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED", "EXPIRED", "REJECTED"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


def now_ms():
    return int(time.time() * 1000)


def db_of(hub):
    return pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]


async def connect(hub, device, secret, seq=1):
    """A connected box that has said hello (with `seq`); returns the socket."""
    ws = await websockets.connect(hub.ws_url, additional_headers=basic(device, secret), open_timeout=10)
    await ws.send(json.dumps({"type": "hello", "id": "h-1", "seq": seq, "ts": now_ms(), "model": "argus-sim-1",
                              "firmware": "1.0.0", "bootId": "boot-1"}))
    w = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert w["type"] == "welcome", w
    return ws


async def recv(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def log(seq, text="line", level="info", ts=None):
    return {"type": "log", "seq": seq, "ts": ts or now_ms(), "level": level, "source": "docs", "text": text}


def event(seq, ts, channel="zdf.de"):
    return {"type": "event", "seq": seq, "ts": ts, "event": "tune", "channel": channel}


# --- The device protocol ------------------------------------------------------------------


def test_seq_on_hello_and_ping_is_checked_but_never_acknowledged(hub):
    """protocol.md, Envelope: `seq` is optional on hello and ping, refused if it is not an
    integer >= 0, and not part of the acknowledged stream."""
    secret = hub.register("doc-seq")

    async def main():
        ws = await connect(hub, "doc-seq", secret, seq=50)
        await ws.send(json.dumps({"type": "ping", "id": "p-60", "seq": 60}))
        pong = await recv(ws)
        assert pong["type"] == "pong" and pong["ref"] == "p-60", pong
        await ws.send(json.dumps({"type": "ping", "id": "p-bad", "seq": -1}))
        err = await recv(ws)
        assert err["code"] == "invalid_field" and err["field"] == "seq" and err["ref"] == "p-bad", err
        await ws.send(json.dumps(log(1)))
        # The next frame is the ack of the log, and it says 1: not 50 or 60.
        assert await recv(ws) == {"type": "ack", "upTo": 1}
        await ws.close()

    run(main())


def test_an_ack_covers_a_batch_member_refused_as_invalid_and_an_all_invalid_batch_gets_one_error(hub):
    """protocol.md, Telemetry: the ack's upTo passes over a member refused as invalid (it is
    dropped, never stored); a batch whose every member is invalid is refused with the first
    member's error alone, and nothing is acknowledged."""
    secret = hub.register("doc-batch")

    async def main():
        ws = await connect(hub, "doc-batch", secret)
        await ws.send(json.dumps({"type": "batch", "id": "b-1", "messages": [log(1), log(2, level="loud"), log(3)]}))
        err = await recv(ws)
        assert err["code"] == "invalid_field" and err["field"] == "messages[1].level" and err["ref"] == "b-1", err
        assert await recv(ws) == {"type": "ack", "upTo": 3}
        await ws.send(json.dumps({"type": "batch", "id": "b-2", "messages": [log(4, level="loud"), {"type": "log", "seq": 5}]}))
        err = await recv(ws)
        assert err["code"] == "invalid_field" and err["field"] == "messages[0].level" and err["ref"] == "b-2", err
        # Frames arrive in order: had there been a second error or an ack, it would come first.
        await ws.send(json.dumps({"type": "ping", "id": "barrier"}))
        assert (await recv(ws))["type"] == "pong"
        await ws.close()

    run(main())
    d = db_of(hub)
    wait_for(lambda: d.logs.count_documents({"d": "doc-batch"}) == 2, timeout=10, what="the two valid lines stored")
    assert sorted(l["s"] for l in d.logs.find({"d": "doc-batch"})) == [1, 3]


def test_each_frame_of_a_fragmented_message_gets_its_own_fragmented_frame_error(hub):
    """protocol.md, Framing and Errors: one `fragmented_frame` per WebSocket frame of a
    fragmented message (the first and each continuation); none of it is processed."""
    secret = hub.register("doc-frag")

    async def main():
        ws = await connect(hub, "doc-frag", secret)
        # One message in three WebSocket frames: text (FIN=0), continuation (FIN=0),
        # continuation (FIN=1). (websockets' own send(iterable) would add an empty fourth.)
        async with ws.send_context():
            ws.protocol.send_text(b'{"type":"ping",', fin=False)
            ws.protocol.send_continuation(b'"id":', fin=False)
            ws.protocol.send_continuation(b'"frag"}', fin=True)
        await ws.send(json.dumps({"type": "ping", "id": "barrier"}))
        got = []
        while True:
            m = await recv(ws)
            if m["type"] == "pong":
                assert m["ref"] == "barrier", m  # the fragmented ping was not answered
                break
            got.append(m)
        assert [m["code"] for m in got] == ["fragmented_frame"] * 3, got
        await ws.close()

    run(main())


def nested_ping(id, containers):
    """A ping whose extra field puts the scalar 1 inside `containers` objects and arrays,
    the top-level object included (unknown fields are ignored)."""
    return '{"type":"ping","id":"%s","x":' % id + "[" * (containers - 1) + "1" + "]" * (containers - 1) + "}"


def test_the_nesting_limit_of_32_counts_the_top_level_object(hub):
    """protocol.md, Framing: a value may be enclosed by at most 32 objects or arrays, the
    top-level object included."""
    secret = hub.register("doc-deep")

    async def main():
        ws = await connect(hub, "doc-deep", secret)
        await ws.send(nested_ping("d32", 32))
        m = await recv(ws)
        assert m["type"] == "pong" and m["ref"] == "d32", m
        await ws.send(nested_ping("d33", 33))
        m = await recv(ws)
        assert m["type"] == "error" and m["code"] == "invalid_json" and "deeper than 32" in m["reason"], m
        await ws.close()

    run(main())


# --- Commands -----------------------------------------------------------------------------


def test_received_confirms_a_delivery_without_a_history_entry(make_hub):
    """commands.md, States: `received` sets `confirmed` (and `confirmedAt`), leaves the
    execution SENT, adds no history entry, and stops the re-delivery an unconfirmed execution
    gets after --command-ack-timeout. A silent box beside it shows the re-delivery would have
    happened by then."""
    hub = make_hub(extra_args=["--heartbeat", "30", "--command-ack-timeout", "1"]).start()
    s_ack, s_mute = hub.register("doc-ack"), hub.register("doc-mute")

    # The job is stored with its executions before the boxes connect; they get it on hello.
    # (A box online at creation is sent the command while its execution is being inserted,
    # and the SENT entry was once seen lost to that race: not what this test is about.)
    _, job, _ = hub.call("POST", "/api/v1/commands", {"name": "message", "params": {"text": "hi"},
                                                      "target": {"devices": ["doc-ack", "doc-mute"]}}, expect=201)

    async def main():
        ack_box = await connect(hub, "doc-ack", s_ack)
        mute_box = await connect(hub, "doc-mute", s_mute)
        cmd = await recv(ack_box)
        assert cmd["type"] == "command" and cmd["id"] == job["id"], cmd
        await ack_box.send(json.dumps({"type": "command_status", "seq": 2, "ts": now_ms(), "ref": cmd["id"], "state": "received"}))
        assert await recv(ack_box) == {"type": "ack", "upTo": 2}

        def execution(device):
            return hub.call("GET", f"/api/v1/commands/{job['id']}/executions/{device}", expect=200)[1]

        # The silent box's delivery goes unconfirmed past the ack timeout: back to QUEUED.
        await asyncio.to_thread(wait_for, lambda: [h["state"] for h in execution("doc-mute")["history"]][:3] == ["QUEUED", "SENT", "QUEUED"],
                                15, "the unconfirmed delivery requeued")
        e = await asyncio.to_thread(wait_for, lambda: (lambda e: e if e.get("confirmed") else None)(execution("doc-ack")),
                                    15, "the received report applied")
        await ack_box.close()
        await mute_box.close()
        return e

    e = run(main())
    assert e["state"] == "SENT", e
    assert e["confirmed"] is True and isinstance(e["confirmedAt"], int), e
    assert [h["state"] for h in e["history"]] == ["QUEUED", "SENT"], e["history"]
    assert e["attempts"] == 1, e


# --- The operator API ---------------------------------------------------------------------


def test_list_limits_are_those_documented(hub):
    """README and docs/api.md: `limit` is 1-500 on /commands and 1-1000 on every other list."""
    ranges = {"/api/v1/devices": 1000, "/api/v1/commands": 500, "/api/v1/commands/c0/executions": 1000,
              "/api/v1/devices/x/events": 1000, "/api/v1/devices/x/logs": 1000, "/api/v1/alarms": 1000,
              "/api/v1/audit": 1000}
    for path, top in ranges.items():
        hub.call("GET", f"{path}?limit={top}", expect=200)
        hub.call("GET", f"{path}?limit=1", expect=200)
        for bad in (0, top + 1, "x"):
            status, body, _ = hub.call("GET", f"{path}?limit={bad}")
            assert status == 400 and body["error"]["message"] == f"limit must be an integer from 1 to {top}", (path, bad, body)


def test_events_and_logs_default_to_the_hour_before_to_which_defaults_to_now(hub):
    """README and docs/api.md: `to` defaults to now and `from` to one hour before `to`;
    events and logs are selected by the box's time `t`, in [from, to), spanning at most 31 days."""
    secret = hub.register("doc-range")
    now = now_ms()
    old, recent = now - 2 * 3_600_000, now - 10 * 60_000

    async def main():
        ws = await connect(hub, "doc-range", secret)
        await ws.send(json.dumps({"type": "batch", "id": "b", "messages": [
            event(2, old), log(3, "old", ts=old), event(4, recent), log(5, "recent", ts=recent)]}))
        assert await recv(ws) == {"type": "ack", "upTo": 5}
        await ws.close()

    run(main())
    to = now - 90 * 60_000  # [to - 1 h, to) holds `old` only
    wide = now - 3 * 3_600_000
    for kind, old_seq, recent_seq in (("events", 2, 4), ("logs", 3, 5)):
        base = f"/api/v1/devices/doc-range/{kind}"

        def seqs(query=""):
            return [x["seq"] for x in hub.call("GET", base + query, expect=200)[1]["items"]]

        # Both are stored once the wide range shows them (newest first).
        wait_for(lambda: seqs(f"?from={wide}") == [recent_seq, old_seq], timeout=10, what=f"both {kind} stored")
        assert seqs() == [recent_seq], kind                      # the last hour
        assert seqs(f"?to={to}") == [old_seq], kind              # the hour before `to`
        assert hub.call("GET", f"{base}?from={recent}&to={recent}")[0] == 400  # from must be before to
        assert seqs(f"?from={recent}&to={recent + 1}") == [recent_seq], kind  # from inclusive
        assert seqs(f"?from={recent - 1}&to={recent}") == [], kind            # to exclusive
        assert seqs(f"?from={now - 31 * 86_400_000}&to={now}") == [recent_seq, old_seq], kind
        assert hub.call("GET", f"{base}?from={now - 31 * 86_400_000 - 1}&to={now}")[0] == 400  # over 31 days


def keys(d):
    return set(d.keys())


def test_api_response_bodies_are_as_documented(hub):
    """docs/api.md: the bodies of devices, tokens, jobs, executions (history entries name the
    state `state`), the list wrappers `items`/`nextCursor`/`nextBefore`, cancel, audit,
    firmware, alarms and rollouts."""
    # Devices and tokens.
    _, reg, _ = hub.call("POST", "/api/v1/devices", {"id": "doc-a", "model": "argus-sim-1", "tags": ["lab"]}, expect=201)
    assert keys(reg) == {"id", "model", "tags", "secret"} and reg["tags"] == ["lab"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", reg["secret"]), reg["secret"]
    hub.register("doc-b")
    _, tok, _ = hub.call("POST", "/api/v1/tokens", {"name": "grafana", "role": "analyst"}, expect=201)
    assert keys(tok) == {"id", "name", "role", "token"} and tok["role"] == "analyst" and tok["token"].startswith("argus_")
    assert re.fullmatch(r"[0-9a-f]{16}", tok["id"]), tok
    _, tokens, _ = hub.call("GET", "/api/v1/tokens", expect=200)
    assert keys(tokens) == {"items"}
    for t in tokens["items"]:
        assert {"id", "name", "role", "revoked"} <= keys(t) <= {"id", "name", "role", "createdAt", "createdBy", "revoked"}, t
    _, dev, _ = hub.call("GET", "/api/v1/devices/doc-a", expect=200)
    assert dev["id"] == "doc-a" and dev["online"] is False and dev["revoked"] is False and ISO.match(dev["createdAt"]), dev
    _, page, _ = hub.call("GET", "/api/v1/devices?limit=1", expect=200)
    assert keys(page) == {"items", "nextCursor"} and page["nextCursor"] == "doc-a"
    _, page, _ = hub.call("GET", "/api/v1/devices?limit=1&cursor=doc-a", expect=200)
    assert keys(page) == {"items"} and [d["id"] for d in page["items"]] == ["doc-b"]  # last page: no nextCursor

    # A job run to the end by a box (stored first, delivered on hello), with its history.
    _, job, _ = hub.call("POST", "/api/v1/commands", {"name": "message", "params": {"text": "hi"},
                                                     "target": {"device": "doc-a"}}, expect=201)

    async def main():
        ws = await connect(hub, "doc-a", reg["secret"])
        cmd = await recv(ws)
        assert cmd["id"] == job["id"]
        for seq, st in ((2, {"state": "received"}), (3, {"state": "in_progress", "progress": "showing"}), (4, {"state": "succeeded"})):
            await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": now_ms(), "ref": cmd["id"], **st}))
            assert await recv(ws) == {"type": "ack", "upTo": seq}
        await asyncio.to_thread(wait_for, lambda: hub.call("GET", f"/api/v1/commands/{job['id']}/executions/doc-a")[1]["state"] == "SUCCEEDED",
                                15, "SUCCEEDED")
        await ws.close()

    run(main())
    # A second job, to two offline boxes.
    _, job2, _ = hub.call("POST", "/api/v1/commands", {"name": "reboot", "target": {"devices": ["doc-a", "doc-b"]}}, expect=201)
    assert {"id", "name", "params", "target", "count", "createdAt", "deadline", "createdBy", "node", "state"} <= keys(job), job
    assert "devices" not in job and "v" not in job
    assert job["count"] == 1 and job["state"] == "active" and job["params"] == {"text": "hi", "durationSec": 10}
    assert isinstance(job["createdAt"], int) and job["deadline"] - job["createdAt"] == 86_400_000, job
    assert job2["count"] == 2

    _, one, _ = hub.call("GET", f"/api/v1/commands/{job['id']}", expect=200)
    assert list(one["executions"]) == EXECUTION_STATES and one["executions"]["SUCCEEDED"] == 1
    assert sum(one["executions"].values()) == 1 and "devices" not in one
    _, withdev, _ = hub.call("GET", f"/api/v1/commands/{job2['id']}?devices=true", expect=200)
    assert withdev["devices"] == ["doc-a", "doc-b"]

    _, e, _ = hub.call("GET", f"/api/v1/commands/{job['id']}/executions/doc-a", expect=200)
    assert e["job"] == job["id"] and e["device"] == "doc-a" and e["name"] == "message" and e["state"] == "SUCCEEDED", e
    assert e["attempts"] == 1 and e["confirmed"] is True and e["progress"] == "showing", e
    for f in ("createdAt", "updatedAt", "finishedAt", "confirmedAt", "deadline"):
        assert isinstance(e[f], int), (f, e)
    assert "_id" not in e
    assert [h["state"] for h in e["history"]] == ["QUEUED", "SENT", "IN_PROGRESS", "SUCCEEDED"], e["history"]
    for h in e["history"]:
        assert "s" not in h and isinstance(h["at"], int), h
    assert e["history"][2]["progress"] == "showing"

    # Pages: commands by `before`, executions by `cursor`.
    _, jobs, _ = hub.call("GET", "/api/v1/commands?limit=1", expect=200)
    assert keys(jobs) == {"items", "nextBefore"} and jobs["items"][0]["id"] == job2["id"] == jobs["nextBefore"]
    _, jobs, _ = hub.call("GET", f"/api/v1/commands?limit=1&before={job2['id']}", expect=200)
    assert [j["id"] for j in jobs["items"]] == [job["id"]] and jobs["nextBefore"] == job["id"]  # a full page always has one
    _, jobs, _ = hub.call("GET", f"/api/v1/commands?limit=1&before={job['id']}", expect=200)
    assert jobs == {"items": []}
    _, ex, _ = hub.call("GET", f"/api/v1/commands/{job2['id']}/executions?limit=1", expect=200)
    assert keys(ex) == {"items", "nextCursor"} and ex["items"][0]["device"] == "doc-a" == ex["nextCursor"]
    assert "params" not in ex["items"][0] and "result" not in ex["items"][0]
    _, ex, _ = hub.call("GET", f"/api/v1/commands/{job2['id']}/executions?cursor=doc-a", expect=200)
    assert keys(ex) == {"items"} and [x["device"] for x in ex["items"]] == ["doc-b"]

    # Cancel.
    _, c, _ = hub.call("POST", f"/api/v1/commands/{job2['id']}/cancel", expect=200)
    assert c == {"id": job2["id"], "state": "canceled", "alreadyCanceled": False, "executionsCanceled": 2}, c
    _, c, _ = hub.call("POST", f"/api/v1/commands/{job2['id']}/cancel", expect=200)
    assert c["alreadyCanceled"] is True and c["executionsCanceled"] == 0, c
    _, audit, _ = hub.call("GET", "/api/v1/audit?limit=1", expect=200)
    assert keys(audit) == {"items"}
    a = audit["items"][0]
    assert {"at", "actor", "tokenId", "role", "action", "parameters", "result", "node"} <= keys(a), a
    assert a["action"] == "command.cancel" and a["target"] == job2["id"] and a["result"] == "already_canceled", a
    assert ISO.match(a["at"]) and a["parameters"] == {"executions": "0"}, a

    # Firmware, alarms, rollouts, errors.
    sha = "ab" * 32
    _, fw, _ = hub.call("POST", "/api/v1/firmware", {"version": "9.9.9", "models": ["argus-sim-1"], "size": 10, "sha256": sha,
                                                    "url": "http://example.test/fw.bin"}, expect=201)
    assert {"version", "models", "size", "sha256", "url", "status", "uploaded", "createdAt", "createdBy"} <= keys(fw), fw
    assert fw["status"] == "available" and fw["uploaded"] is False and ISO.match(fw["createdAt"]), fw
    assert hub.call("GET", "/api/v1/firmware", expect=200)[1]["items"][0]["version"] == "9.9.9"
    assert hub.call("GET", "/api/v1/alarms", expect=200)[1] == {"items": []}
    assert hub.call("GET", "/api/v1/rollouts", expect=200)[1] == {"items": []}
    status, err, _ = hub.call("GET", "/api/v1/devices/nope")
    assert status == 404 and err == {"error": {"message": "no device nope"}}, err
