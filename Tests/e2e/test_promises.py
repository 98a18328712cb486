"""Documented behaviours that had no end-to-end test (issue 13, item 6), part 1: the spool,
command retries, log_tail cancel, token listing and revocation.

Real hub processes, real clients (Python websockets, raw sockets, the C agent), real stores:
the shared SecantusDB of scripts/test, or one of a test's own where the test stops it.
"""
import asyncio
import hashlib
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import wait_for

from helpers import (connect_and_hello, db_of, execution, expect_ack, history, issue, metric, metrics_msg, next_frame, now_ms, padded_metrics,
                     run, start_agent, stop_agent, unique, wait_state)


# 1. A full spool closes telemetry sessions with 1013; above 90 % the hub stops reading.


def test_spool_above_90_percent_stops_reading_and_a_full_spool_closes_with_1013(make_hub, private_store):
    database = unique("spool")
    uri = private_store.uri(database)
    max_bytes = 16 << 20
    high = max_bytes // 10 * 9
    frame_bytes = 2_200_000   # more than the 10 % left above the mark, so one frame cannot fit then
    hub = make_hub(uri=uri, database=database, extra_args=[
        "--spool-max-mb", "16", "--max-frame-bytes", str(4 << 20), "--heartbeat", "60"]).start()
    secrets = {d: hub.register(d) for d in ("sp-a", "sp-b", "sp-c")}
    acked = {d: set() for d in secrets}
    marks = {}

    async def main():
        # Connected while the store is up: the node knows these boxes through the outage.
        conns = {d: await connect_and_hello(hub, d, s) for d, s in secrets.items()}
        await asyncio.to_thread(private_store.stop)
        a, b, c = conns["sp-a"], conns["sp-b"], conns["sp-c"]
        sizes = []
        seq = 1
        for seq in range(2, 14):
            await a.send(padded_metrics(seq, frame_bytes))
            await expect_ack(a, seq, timeout=30)
            acked["sp-a"].add(seq)
            sizes.append(hub.spool_bytes())
            if metric(hub, "argus_telemetry_read_pauses_total") >= 1:
                break
        else:
            raise AssertionError(f"reading never paused; spool sizes {sizes}")
        marks["sizes"] = sizes
        # A is not read any more: its ping (and the telemetry after it) waits in the socket.
        await a.send(json.dumps({"type": "ping", "id": "paused-a"}))
        await a.send(json.dumps(metrics_msg(seq + 1)))
        # Another box above the mark, with a frame that fits: durable and acknowledged, then
        # it is not read either.
        await c.send(json.dumps(metrics_msg(2)))
        await expect_ack(c, 2)
        acked["sp-c"].add(2)
        await c.send(json.dumps({"type": "ping", "id": "paused-c"}))
        # A frame that does not fit: not acknowledged, the session is closed with 1013.
        await b.send(padded_metrics(2, frame_bytes))
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(b, lambda m: m["type"] == "ack", timeout=30, what="an ack (or the close)")
        marks["b_close"] = closed.value.rcvd.code if closed.value.rcvd else None
        marks["full_total"] = metric(hub, "argus_telemetry_spool_full_total")
        marks["full_bytes"] = hub.spool_bytes()
        # The store comes back: the spool drains and the paused boxes are read again, so their
        # pings are answered only now.
        marks["store_back_ms"] = now_ms()
        await asyncio.to_thread(private_store.start)
        for ws, ref in ((a, "paused-a"), (c, "paused-c")):
            pong = await next_frame(ws, lambda m: m["type"] == "pong", timeout=90, what=f"the pong for {ref}")
            marks[ref] = pong
        await expect_ack(a, seq + 1, timeout=30)
        acked["sp-a"].add(seq + 1)
        # The box closed with 1013 reconnects and resends what was not acknowledged.
        b = await connect_and_hello(hub, "sp-b", secrets["sp-b"])
        await b.send(padded_metrics(2, frame_bytes))
        await expect_ack(b, 2, timeout=30)
        acked["sp-b"].add(2)
        for ws in (a, b, c):
            await ws.close()

    try:
        run(main(), timeout=240)
    except BaseException:
        print(hub.log_text())
        raise
    sizes = marks["sizes"]
    assert sizes[-1] > high and all(s <= high for s in sizes[:-1]), (sizes, high)   # paused at the 90 % mark, not before
    assert marks["b_close"] == 1013, marks
    assert marks["full_total"] >= 1
    assert marks["full_bytes"] <= max_bytes
    for ref in ("paused-a", "paused-c"):
        assert marks[ref]["ref"] == ref and marks[ref]["serverTime"] >= marks["store_back_ms"], (ref, marks[ref], marks["store_back_ms"])
    # Nothing acknowledged is lost.
    d = db_of(hub, uri)

    def stored():
        got = {dev: set() for dev in acked}
        for bucket in d.metrics.find():
            for s in bucket["samples"]:
                got.setdefault(bucket["d"], set()).add(s["s"])
        return got
    wait_for(lambda: all(acked[dev] <= stored().get(dev, set()) for dev in acked), timeout=90,
             what="every acknowledged message in the store")
    wait_for(lambda: hub.spool_bytes() <= max_bytes // 10 * 8, timeout=60, what="the spool to drain")


# 2. Hub-side retries with backoff up to --command-max-attempts, then TIMED_OUT.


def test_an_unconfirmed_command_is_resent_with_backoff_up_to_max_attempts_then_timed_out(make_hub):
    hub = make_hub(extra_args=["--heartbeat", "30", "--command-ack-timeout", "1", "--command-max-attempts", "3"]).start()
    secret = hub.register("mute-1")
    received = []

    async def main():
        ws = await connect_and_hello(hub, "mute-1", secret)
        job = await asyncio.to_thread(issue, hub, "message", {"device": "mute-1"}, {"text": "anyone there?"})

        async def read_commands():
            while True:
                m = json.loads(await ws.recv())
                if m["type"] == "command":
                    received.append(m)   # and never answered
                elif m["type"] == "pong" and m["ref"] == "barrier":
                    return

        reader = asyncio.create_task(read_commands())
        e = await asyncio.to_thread(wait_state, hub, job["id"], "mute-1", {"TIMED_OUT", "SUCCEEDED", "FAILED", "EXPIRED"}, 90)
        # Frames arrive in order: anything the hub sent before this pong has been read.
        await ws.send(json.dumps({"type": "ping", "id": "barrier"}))
        await asyncio.wait_for(reader, 20)
        await ws.close()
        return job, e

    job, e = run(main())
    assert e["state"] == "TIMED_OUT", e
    assert e["attempts"] == 3, e
    assert "3 deliveries" in e.get("reason", ""), e
    # Every transition is in the history: each unconfirmed delivery goes back to the queue.
    assert history(e) == ["QUEUED", "SENT", "QUEUED", "SENT", "QUEUED", "SENT", "TIMED_OUT"], e["history"]
    at = [h["at"] for h in e["history"]]
    assert at == sorted(at), at
    # Unconfirmed after the ack timeout (1 s), then sent again after a backoff of 5 s, then
    # 10 s (docs/commands.md: 5 s, 10 s, ...); the last one times out after the ack timeout.
    assert at[2] - at[1] >= 1000 - 50 and at[4] - at[3] >= 1000 - 50 and at[6] - at[5] >= 1000 - 50, at
    assert at[3] - at[2] >= 5000 - 50, at
    assert at[5] - at[4] >= 10000 - 50, at
    assert [m["id"] for m in received] == [job["id"]] * 3, received
    _, j, _ = hub.call("GET", f"/api/v1/commands/{job['id']}", expect=200)
    assert j["executions"]["TIMED_OUT"] == 1


# 3. Cancelling a running log_tail sends log_tail_stop to the box.


def test_cancelling_a_running_log_tail_sends_log_tail_stop_even_from_another_node(make_hub):
    a = make_hub(extra_args=["--heartbeat", "30"]).start()
    b = make_hub(extra_args=["--heartbeat", "30", "--command-notify", "poll", "--command-poll-ms", "200"], database=a.database).start()
    secret = a.register("tail-py")

    async def main():
        ws = await connect_and_hello(b, "tail-py", secret)   # the box is on node B
        job = await asyncio.to_thread(issue, b, "log_tail", {"device": "tail-py"}, {"durationSec": 600})
        cmd = await next_frame(ws, lambda m: m["type"] == "command", what="the log_tail command")
        assert cmd["id"] == job["id"] and cmd["name"] == "log_tail", cmd
        seq = 2
        for state, extra in (("received", {}), ("in_progress", {"progress": "streaming"})):
            await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": now_ms(), "ref": job["id"], "state": state, **extra}))
            seq += 1
        await ws.send(json.dumps({"type": "log", "seq": seq, "ts": now_ms(), "level": "info", "source": "e2e", "text": "tailing", "tail": job["id"]}))
        await expect_ack(ws, seq)
        await asyncio.to_thread(wait_state, a, job["id"], "tail-py", "IN_PROGRESS")
        # Cancelled on node A: B hears of it (polling) and tells its box to stop.
        _, c, _ = await asyncio.to_thread(a.call, "POST", f"/api/v1/commands/{job['id']}/cancel", None, None, 200)
        stop = await next_frame(ws, lambda m: m["type"] == "command", timeout=20, what="log_tail_stop")
        # The box ends the tail and reports it; a late report does not leave CANCELED.
        seq += 1
        await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": now_ms(), "ref": job["id"], "state": "succeeded",
                                  "result": {"lines": 1}}))
        seq += 1
        await ws.send(json.dumps({"type": "log", "seq": seq, "ts": now_ms(), "level": "info", "source": "e2e", "text": "after the report"}))
        await expect_ack(ws, seq)
        await ws.close()
        return job, c, stop

    job, c, stop = run(main())
    assert c["executionsCanceled"] == 1, c
    assert stop["name"] == "log_tail_stop" and stop["params"] == {"ref": job["id"]}, stop
    # The spool is applied in order: once the later log line is stored, so is the late report.
    wait_for(lambda: db_of(a).logs.count_documents({"d": "tail-py", "txt": "after the report"}) == 1, what="the later log line")
    e = execution(a, job["id"], "tail-py")
    assert e["state"] == "CANCELED" and history(e)[-1] == "CANCELED", e


def test_cancelling_a_log_tail_stops_the_c_agents_tail(hub, tmpdir_path):
    secret = hub.register("tail-c")
    p, log = start_agent(hub, tmpdir_path, "tail-c", secret)
    try:
        hub.wait_device("tail-c", lambda d: d["online"], timeout=20)
        job = issue(hub, "log_tail", {"device": "tail-c"}, {"durationSec": 600})
        wait_state(hub, job["id"], "tail-c", "IN_PROGRESS", timeout=20)
        hub.call("POST", f"/api/v1/commands/{job['id']}/cancel", expect=200)
        # The agent runs log_tail_stop (id JOB-stop, params.ref JOB) and ends the tail early,
        # reporting the tail finished and stopped by that command.
        # The agent logs the tail's end and the stop command's success a moment apart: wait for both.
        lines = (f"command {job['id']}: succeeded", f"command {job['id']}-stop: received", f"command {job['id']}-stop: succeeded")
        text = wait_for(lambda: (lambda t: t if all(x in t for x in lines) else None)(log.read_text(errors="replace")),
                        timeout=20, what="the agent to end the tail and report the stop")
        assert text.index(lines[1]) < text.index(lines[0]), text[-3000:]  # the tail ended because of the stop
        assert execution(hub, job["id"], "tail-c")["state"] == "CANCELED"
    finally:
        stop_agent(p)


# 4. GET /api/v1/tokens never returns a token; a revocation reaches the other node within 5 s.


def test_token_list_never_shows_a_token_and_a_revocation_is_refused_on_the_other_node_within_5_s(make_hub):
    a = make_hub(extra_args=["--heartbeat", "30"]).start()
    b = make_hub(extra_args=["--heartbeat", "30"], database=a.database).start()
    _, op, _ = a.call("POST", "/api/v1/tokens", {"name": "ops-1", "role": "operator"}, expect=201)
    _, ana, _ = a.call("POST", "/api/v1/tokens", {"name": "ana-1", "role": "analyst"}, expect=201)
    secrets = [a.token, op["token"], ana["token"]]

    def check_listing(h):
        _, listing, _ = h.call("GET", "/api/v1/tokens", expect=200)
        raw = json.dumps(listing)
        assert {t["name"] for t in listing["items"]} >= {"bootstrap", "ops-1", "ana-1"}, listing
        for s in secrets:
            assert s not in raw and s.removeprefix("argus_") not in raw
            assert hashlib.sha256(s.encode()).hexdigest() not in raw, "not even the hash"
        for t in listing["items"]:
            assert set(t) <= {"id", "name", "role", "createdAt", "createdBy", "revoked"}, t
        return listing

    check_listing(a)
    check_listing(b)
    assert a.call("GET", "/api/v1/tokens", token=op["token"])[0] == 403   # admins only
    # B verifies (and caches) the operator token; A revokes it.
    b.call("GET", "/api/v1/devices", token=op["token"], expect=200)
    a.call("DELETE", f"/api/v1/tokens/{op['id']}", expect=204)
    revoked = time.monotonic()
    assert a.call("GET", "/api/v1/devices", token=op["token"])[0] == 401   # at once on the revoking node
    wait_for(lambda: b.call("GET", "/api/v1/devices", token=op["token"])[0] == 401, timeout=5 + 1.5,
             what="node B to refuse the revoked token (documented: within 5 s; 1.5 s allowed for the polls)")
    refused_after = time.monotonic() - revoked
    for _ in range(3):
        assert b.call("GET", "/api/v1/devices", token=op["token"])[0] == 401
    b.call("GET", "/api/v1/fleet/summary", token=ana["token"], expect=200)   # other tokens unaffected
    listing = check_listing(b)
    assert [t["revoked"] for t in listing["items"] if t["id"] == op["id"]] == [True]
    print(f"revoked token refused on the other node {refused_after:.1f} s after the revocation")
