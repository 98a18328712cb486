"""Remote commands end to end: the C agent and a Python websockets box against real hubs."""
import asyncio
import hashlib
import json
import os
import signal
import time

import pymongo
import websockets

from conftest import wait_for, basic, hello
from helpers import spec_errors
from test_agent import agent, stop


def db_of(hub):
    return pymongo.MongoClient(os.environ["MONGODB_URI"])[hub.database]


def execution(hub, job, device):
    return hub.call("GET", f"/api/v1/commands/{job}/executions/{device}", expect=200)[1]


def wait_state(hub, job, device, states, timeout=30):
    states = {states} if isinstance(states, str) else set(states)
    return wait_for(lambda: (lambda e: e if e["state"] in states else None)(
        hub.call("GET", f"/api/v1/commands/{job}/executions/{device}")[1] or {"state": None}),
        timeout=timeout, what=f"{job} on {device} in {states}")


def start_agent(hub, tmp, device, secret, *extra, name=None):
    log = tmp / f"{name or device}.log"
    p = agent("--hub", hub.ws_url, "--id", device, "--secret", secret, "--state-dir", str(tmp / f"state-{device}"), "-v",
              *extra, log=open(log, "ab"))
    return p, log


def issue(hub, name, target, params=None, expect=201, token=None, **extra):
    body = {"name": name, "target": target, **extra}
    if params is not None:
        body["params"] = params
    return hub.call("POST", "/api/v1/commands", body, expect=expect, token=token)[1]


def history(e):
    return [h["state"] for h in e["history"]]


def test_online_box_runs_a_command_and_the_audit_log_records_it(hub, tmpdir_path):
    secret = hub.register("cmd-1")
    p, log = start_agent(hub, tmpdir_path, "cmd-1", secret)
    try:
        hub.wait_device("cmd-1", lambda d: d["online"], timeout=20)
        job = issue(hub, "message", {"device": "cmd-1"}, {"text": "hello from e2e", "durationSec": 5})
        assert job["count"] == 1 and job["state"] == "active"
        e = wait_state(hub, job["id"], "cmd-1", "SUCCEEDED")
        assert history(e)[0] == "QUEUED" and "SENT" in history(e) and history(e)[-1] == "SUCCEEDED"
        ats = [h["at"] for h in e["history"]]
        assert ats == sorted(ats)
        _, j, _ = hub.call("GET", f"/api/v1/commands/{job['id']}", expect=200)
        assert j["executions"]["SUCCEEDED"] == 1 and j["name"] == "message"
        # log_pull: the result is stored and downloadable as text.
        pull = issue(hub, "log_pull", {"devices": ["cmd-1"]}, {"lines": 50})
        wait_state(hub, pull["id"], "cmd-1", "SUCCEEDED")
        status, text, headers = hub.call("GET", f"/api/v1/commands/{pull['id']}/executions/cmd-1/result", expect=200)
        assert "attachment" in headers["Content-Disposition"] and isinstance(text, str) and "received" in text
        diag = issue(hub, "diagnostics", {"device": "cmd-1"})
        e = wait_state(hub, diag["id"], "cmd-1", "SUCCEEDED", timeout=40)
        assert e["result"], e
        assert spec_errors("Execution", e) == [] and spec_errors("Job", j) == []
        _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.create", expect=200)
        ours = [a for a in audit["items"] if a["target"] in (job["id"], pull["id"], diag["id"])]
        assert len(ours) == 3 and all(a["result"] == "ok" and a["role"] == "admin" and a["node"] for a in ours)
        _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.result.download", expect=200)
        assert audit["items"][0]["target"] == f"{pull['id']}|cmd-1"
    finally:
        stop(p)


def test_offline_box_gets_its_queued_command_once_on_connect_and_not_again(hub, tmpdir_path):
    secret = hub.register("cmd-off")
    job = issue(hub, "set_config", {"device": "cmd-off"}, {"values": {"logLevel": "debug"}})
    time.sleep(1.5)
    assert execution(hub, job["id"], "cmd-off")["state"] == "QUEUED"
    p, log = start_agent(hub, tmpdir_path, "cmd-off", secret)
    try:
        e = wait_state(hub, job["id"], "cmd-off", "SUCCEEDED")
        assert history(e).count("SENT") == 1
    finally:
        stop(p)
    # Reconnecting does not deliver a finished command again.
    p, log = start_agent(hub, tmpdir_path, "cmd-off", secret)
    try:
        hub.wait_device("cmd-off", lambda d: d["online"], timeout=20)
        time.sleep(2)
    finally:
        stop(p)
    text = log.read_text(errors="replace")
    assert text.count(f"command {job['id']}: received") == 1, text[-3000:]
    assert "delivered again" not in text
    assert history(execution(hub, job["id"], "cmd-off")).count("SENT") == 1


def test_a_delivery_repeated_after_a_hub_kill_9_runs_once(make_hub, tmpdir_path):
    hub = make_hub(extra_args=["--heartbeat", "1"]).start()
    secret = hub.register("cmd-k9")
    p, log = start_agent(hub, tmpdir_path, "cmd-k9", secret)
    try:
        hub.wait_device("cmd-k9", lambda d: d["online"], timeout=20)
        job = issue(hub, "log_tail", {"device": "cmd-k9"}, {"durationSec": 6})
        wait_state(hub, job["id"], "cmd-k9", "IN_PROGRESS", timeout=20)
        hub.stop(signal.SIGKILL)
        hub.start()
        # The box reconnects; the hub delivers the open execution again; the box answers with
        # its state and does not start a second tail.
        wait_for(lambda: "delivered again" in log.read_text(errors="replace"), timeout=30, what="a repeated delivery")
        e = wait_state(hub, job["id"], "cmd-k9", "SUCCEEDED", timeout=30)
        text = log.read_text(errors="replace")
        assert text.count(f"command {job['id']}: received") == 1, text[-3000:]
        assert history(e)[-1] == "SUCCEEDED"
        _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.create", expect=200)
        assert [x["target"] for x in audit["items"]] == [job["id"]]
    finally:
        stop(p)


def test_two_nodes_deliver_wherever_the_box_is_and_a_moved_box_runs_it_once(make_hub, tmpdir_path):
    a = make_hub(extra_args=["--heartbeat", "1"]).start()
    b = make_hub(extra_args=["--heartbeat", "1", "--command-notify", "poll", "--command-poll-ms", "200"], database=a.database).start()
    secret = a.register("cmd-2n")
    p, log = start_agent(b, tmpdir_path, "cmd-2n", secret)
    try:
        d = b.wait_device("cmd-2n", lambda d: d["online"], timeout=20)
        assert d["node"].endswith(f":{b.device_port}")
        job = issue(a, "message", {"device": "cmd-2n"}, {"text": "via node A"})   # issued on A, box on B (polling)
        e = wait_state(a, job["id"], "cmd-2n", "SUCCEEDED")
        assert e["node"] == d["node"], e
        # B issues, the box is on B: delivered at once.
        job2 = issue(b, "reload_portal", {"device": "cmd-2n"})
        wait_state(a, job2["id"], "cmd-2n", "SUCCEEDED")
    finally:
        stop(p)
    # The box on A, the job issued on B: A hears of it through the change stream.
    p, log = start_agent(a, tmpdir_path, "cmd-2n", secret)
    try:
        d = a.wait_device("cmd-2n", lambda d: d["online"] and d["node"].endswith(f":{a.device_port}"), timeout=20)
        job4 = issue(b, "message", {"device": "cmd-2n"}, {"text": "via node B"})
        e = wait_state(b, job4["id"], "cmd-2n", "SUCCEEDED")
        assert e["node"] == d["node"], e
    finally:
        stop(p)
    # Offline now: queue on B, the box comes back on A and runs it once; then it moves to B.
    job3 = issue(b, "set_config", {"device": "cmd-2n"}, {"values": {"metricsIntervalSec": 30}})
    p, log = start_agent(a, tmpdir_path, "cmd-2n", secret)
    try:
        wait_state(b, job3["id"], "cmd-2n", "SUCCEEDED")
    finally:
        stop(p)
    p, log = start_agent(b, tmpdir_path, "cmd-2n", secret)
    try:
        b.wait_device("cmd-2n", lambda d: d["online"], timeout=20)
        time.sleep(2)
    finally:
        stop(p)
    assert log.read_text(errors="replace").count(f"command {job3['id']}: received") == 1
    # Each node audited the jobs it accepted, under its own name.
    _, audit, _ = a.call("GET", "/api/v1/audit?action=command.create", expect=200)
    by_job = {x["target"]: x["node"] for x in audit["items"]}
    assert by_job[job["id"]].endswith(f":{a.device_port}") and by_job[job2["id"]].endswith(f":{b.device_port}")


def test_firmware_catalogue_upload_range_download_update_and_a_bad_checksum(hub, tmpdir_path):
    image = os.urandom(600_000)
    sha = hashlib.sha256(image).hexdigest()
    # A firmware without a checksum is refused and nothing is stored.
    s, body, _ = hub.call("POST", "/api/v1/firmware", {"version": "2.0.0", "models": ["argus-sim-1"], "size": len(image)})
    assert s == 400 and "sha256" in body["error"]["message"]
    hub.call("POST", "/api/v1/firmware", {"version": "2.0.0", "models": ["argus-sim-1"], "size": len(image), "sha256": sha}, expect=201)
    # A wrong image is refused and nothing kept.
    import urllib.request
    def put(data):
        req = urllib.request.Request(hub.api + "/api/v1/firmware/2.0.0/image", data=data, method="PUT",
                                     headers={"Authorization": f"Bearer {hub.token}", "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    s, body = put(image[:-1] + b"x")
    assert s == 400 and "does not match" in body["error"]["message"]
    assert db_of(hub).firmware_chunks.count_documents({}) == 0
    s, rec = put(image)
    assert s == 200 and rec["status"] == "available" and rec["url"].endswith("/firmware/2.0.0")
    # Range support.
    def get(headers):
        req = urllib.request.Request(hub.api + "/firmware/2.0.0", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers
    s, data, h = get({})
    assert s == 200 and data == image and h["Accept-Ranges"] == "bytes"
    s, data, h = get({"Range": "bytes=261000-262999"})
    assert s == 206 and data == image[261000:263000] and h["Content-Range"] == f"bytes 261000-262999/{len(image)}"
    s, data, h = get({"Range": "bytes=-100"})
    assert s == 206 and data == image[-100:]
    s, data, h = get({"Range": f"bytes={len(image)}-"})
    assert s == 416 and h["Content-Range"] == f"bytes */{len(image)}"

    secret = hub.register("fw-1")
    p, log = start_agent(hub, tmpdir_path, "fw-1", secret, "--firmware", "1.0.0")
    try:
        hub.wait_device("fw-1", lambda d: d["online"], timeout=20)
        bad = issue(hub, "firmware_update", {"device": "fw-1"},
                    {"version": "2.0.0", "url": rec["url"], "size": len(image), "sha256": "0" * 64})
        e = wait_state(hub, bad["id"], "fw-1", "FAILED", timeout=60)
        assert "sha256" in e["reason"] or "checksum" in e["reason"], e
        good = issue(hub, "firmware_update", {"device": "fw-1"}, {"version": "2.0.0"})   # filled from the catalogue
        e = wait_state(hub, good["id"], "fw-1", "SUCCEEDED", timeout=90)
        progress = [h.get("progress") for h in e["history"] if h["state"] == "IN_PROGRESS"]
        assert "downloading" in progress, e["history"]
        hub.wait_device("fw-1", lambda d: d["firmware"] == "2.0.0", timeout=30)
    finally:
        stop(p)
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=firmware.add", expect=200)
    assert sorted(a["result"].split(":")[0] for a in audit["items"]) == ["ok", "rejected"]
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=firmware.upload", expect=200)
    assert sorted(a["result"].split(":")[0] for a in audit["items"]) == ["ok", "rejected"]
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.create", expect=200)
    assert {a["target"] for a in audit["items"]} >= {bad["id"], good["id"]}
    # A model the firmware is not for is refused.
    hub.register("fw-other", model="other-model")
    s, body, _ = hub.call("POST", "/api/v1/commands", {"name": "firmware_update", "params": {"version": "2.0.0"},
                                                       "target": {"device": "fw-other"}})
    assert s == 400 and "other-model" in body["error"]["message"]


def test_bad_requests_are_refused_with_nothing_stored_and_roles_are_checked(hub):
    hub.register("bad-1", tags=["lab"])
    db = db_of(hub)
    cases = [
        ({"name": "selfdestruct", "target": {"device": "bad-1"}}, "unknown command"),
        ({"name": "reboot", "params": {"force": True}, "target": {"device": "bad-1"}}, "params.force"),
        ({"name": "log_tail", "params": {"durationSec": 6000}, "target": {"device": "bad-1"}}, "durationSec"),
        ({"name": "reboot", "target": {"tag": "nowhere"}}, "matches no devices"),
        ({"name": "reboot", "target": {"devices": []}}, "empty"),
        ({"name": "reboot", "target": {"devices": ["bad-1", "ghost"]}}, "ghost"),
        ({"name": "reboot"}, "target is required"),
        ({"name": "reboot", "target": {"device": "bad-1"}, "deadline": int(time.time() * 1000) - 1000}, "passed"),
        ({"name": "firmware_update", "params": {"version": "9", "url": "http://x/y", "size": 10}, "target": {"device": "bad-1"}}, "sha256"),
        ({"name": "reboot", "target": {"device": "bad-1"}, "colour": "red"}, "unknown field colour"),
    ]
    for body, words in cases:
        s, r, _ = hub.call("POST", "/api/v1/commands", body)
        assert s == 400 and words in r["error"]["message"], (body, r)
    assert db.jobs.count_documents({}) == 0 and db.executions.count_documents({}) == 0
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.create", expect=200)
    assert len(audit["items"]) == len(cases) and all(a["result"].startswith("rejected: ") for a in audit["items"])
    # Roles: an analyst sees no per-box data and cannot issue or cancel; a viewer reads the
    # fleet only (every role and command kind: test_access.py).
    _, t, _ = hub.call("POST", "/api/v1/tokens", {"name": "ana", "role": "analyst"}, expect=201)
    issue(hub, "reboot", {"device": "bad-1"}, expect=403, token=t["token"])
    job = issue(hub, "reboot", {"tag": "lab"})
    hub.call("GET", f"/api/v1/commands/{job['id']}", token=t["token"], expect=403)
    hub.call("POST", f"/api/v1/commands/{job['id']}/cancel", token=t["token"], expect=403)
    # Cancelling twice is idempotent.
    _, c1, _ = hub.call("POST", f"/api/v1/commands/{job['id']}/cancel", expect=200)
    _, c2, _ = hub.call("POST", f"/api/v1/commands/{job['id']}/cancel", expect=200)
    assert c1["executionsCanceled"] == 1 and not c1["alreadyCanceled"]
    assert c2["executionsCanceled"] == 0 and c2["alreadyCanceled"]
    e = execution(hub, job["id"], "bad-1")
    assert e["state"] == "CANCELED" and history(e) == ["QUEUED", "CANCELED"]
    hub.call("POST", "/api/v1/commands/nope/cancel", expect=404)
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.cancel", expect=200)
    assert sorted(a["result"] for a in audit["items"]) == ["already_canceled", "not_found", "ok"]


def test_a_box_that_rejects_a_command_ends_in_rejected_with_its_reason(hub):
    """An independent box (Python websockets) that acknowledges and rejects."""
    secret = hub.register("py-box")

    async def box(got):
        async with websockets.connect(hub.ws_url, additional_headers=basic("py-box", secret), open_timeout=10) as ws:
            await ws.send(hello())
            assert json.loads(await ws.recv())["type"] == "welcome"
            seq = 2
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if m["type"] != "command":
                    continue
                got.append(m)
                await ws.send(json.dumps({"type": "command_status", "seq": seq, "ts": int(time.time() * 1000), "ref": m["id"],
                                          "state": "rejected", "reason": "no screen attached"}))
                seq += 1
                ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert ack == {"type": "ack", "upTo": seq - 1}, ack
                return

    got = []

    async def main():
        t = asyncio.create_task(box(got))
        await asyncio.sleep(1.0)
        job = await asyncio.to_thread(issue, hub, "message", {"device": "py-box"}, {"text": "hi"})
        await asyncio.wait_for(t, 30)
        return job

    job = asyncio.run(main())
    assert got[0]["id"] == job["id"] and got[0]["name"] == "message" and got[0]["params"] == {"text": "hi", "durationSec": 10}
    e = wait_state(hub, job["id"], "py-box", "REJECTED")
    assert e["reason"] == "no screen attached" and history(e)[-1] == "REJECTED"


def upload_firmware(hub, version, image, models=("argus-sim-1",)):
    import urllib.request
    sha = hashlib.sha256(image).hexdigest()
    hub.call("POST", "/api/v1/firmware", {"version": version, "models": list(models), "size": len(image), "sha256": sha}, expect=201)
    req = urllib.request.Request(hub.api + f"/api/v1/firmware/{version}/image", data=image, method="PUT",
                                 headers={"Authorization": f"Bearer {hub.token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


def test_a_rollout_with_injected_failures_pauses_at_its_threshold_then_aborts(make_hub, tmpdir_path):
    import subprocess
    from conftest import ROOT
    hub = make_hub(extra_args=["--heartbeat", "5", "--rollout-tick-ms", "200"]).start()
    n = 40
    secrets = tmpdir_path / "ro.secrets"
    env = dict(os.environ, ARGUS_API=hub.api, ARGUS_TOKEN=hub.token)
    r = subprocess.run([str(ROOT / "scripts/register-fleet"), str(n), "ro", str(secrets)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    upload_firmware(hub, "3.0.0", os.urandom(50_000))
    log = tmpdir_path / "ro-fleet.log"
    p = agent("--fleet", str(n), "--id-prefix", "ro", "--secrets-file", str(secrets), "--hub", hub.ws_url,
              "--ramp", "200", "--seed", "5", "--fail-firmware", "0.7", "--progress", "1", log=open(log, "wb"))
    try:
        wait_for(lambda: len(hub.call("GET", "/api/v1/devices?online=true&limit=1000")[1]["items"]) == n, timeout=60, what="fleet online")
        # Bad policies are refused with the field named, and nothing is stored.
        s, body, _ = hub.call("POST", "/api/v1/rollouts", {"firmware": "3.0.0", "target": {"all": True}, "waves": [50, 10]})
        assert s == 400 and "waves" in body["error"]["message"], body
        s, body, _ = hub.call("POST", "/api/v1/rollouts", {"firmware": "9.9.9", "target": {"all": True}})
        assert s == 400 and "catalogue" in body["error"]["message"]
        _, ro, _ = hub.call("POST", "/api/v1/rollouts", {
            "firmware": "3.0.0", "target": {"all": True}, "waves": [50, 100], "ratePerMinute": 600,
            "successThreshold": 0.9, "failureThreshold": 0.3, "minFailureCount": 4}, expect=201)
        assert ro["targetCount"] == n and [w["target"] for w in ro["waves"]] == [20, 40]
        final = wait_for(lambda: (lambda r: r if r["state"] != "running" else None)(hub.call("GET", f"/api/v1/rollouts/{ro['id']}")[1]),
                         timeout=120, what="the rollout to stop running")
        # 70 % of installs fail (injected): the failure rule pauses it within the first wave.
        assert final["state"] == "paused" and final["reason"].startswith("failure threshold"), final
        assert final["failed"] >= 4 and final["failed"] / (final["failed"] + final["succeeded"]) >= 0.3
        assert final["started"] < n  # it stopped before the whole fleet
        # Failures carry the box's reason.
        job = final["jobs"][0]
        _, page, _ = hub.call("GET", f"/api/v1/commands/{job}/executions?state=FAILED", expect=200)
        assert page["items"] and all(e["reason"] == "injected install failure" for e in page["items"])
        # A rollout and executions in the middle of their lives match docs/openapi.yaml.
        assert spec_errors("Rollout", final) == [] and spec_errors("ExecutionPage", page) == []
        # Operator control: resume runs it again until it pauses again; pausing
        # again is a no-op, abort ends it, resume is then refused.
        _, rs, _ = hub.call("POST", f"/api/v1/rollouts/{ro['id']}/resume", expect=200)
        assert rs["state"] == "running", rs
        again = wait_for(lambda: (lambda r: r if r["state"] != "running" else None)(hub.call("GET", f"/api/v1/rollouts/{ro['id']}")[1]),
                         timeout=60, what="the resumed rollout to stop running")
        # (by the failure rule, or, when the boxes already started finish first, because the
        # wave ends below the success threshold)
        assert again["state"] == "paused" and again["started"] >= final["started"], json.dumps(again)
        assert again["reason"].startswith(("failure threshold", "wave 1 of 2 finished below the success threshold")), again["reason"]
        hub.call("POST", f"/api/v1/rollouts/{ro['id']}/pause", expect=200)
        _, ab, _ = hub.call("POST", f"/api/v1/rollouts/{ro['id']}/abort", {"reason": "too many failures"}, expect=200)
        assert ab["state"] == "aborted" and ab["reason"] == "too many failures"
        hub.call("POST", f"/api/v1/rollouts/{ro['id']}/resume", expect=409)
        time.sleep(1)
        assert hub.call("GET", f"/api/v1/rollouts/{ro['id']}")[1]["started"] == ab["started"]
        _, audit, _ = hub.call("GET", "/api/v1/audit?action=rollout.create", expect=200)
        assert [a["result"] for a in audit["items"]].count("ok") == 1 and len(audit["items"]) == 3
        _, audit, _ = hub.call("GET", "/api/v1/audit?action=rollout.resume", expect=200)
        assert [x["result"] for x in audit["items"]].count("ok") == 1 and len(audit["items"]) == 2, audit
        _, audit, _ = hub.call("GET", "/api/v1/audit?action=rollout.abort", expect=200)
        assert audit["items"][0]["result"] == "ok" and audit["items"][0]["target"] == ro["id"]
    finally:
        stop(p)


def test_a_log_tail_streams_to_the_operators_live_view_for_its_duration(hub, tmpdir_path):
    from test_agent import evening
    secret = hub.register("tail-1")
    p, log = start_agent(hub, tmpdir_path, "tail-1", secret, "--start", evening(), "--clock-speed", "120", "--seed", "4")
    try:
        hub.wait_device("tail-1", lambda d: d["online"], timeout=20)

        async def main():
            url = f"ws://127.0.0.1:{hub.api_port}/api/v1/live?device=tail-1&token={hub.token}"
            async with websockets.connect(url) as view:
                tailed = []

                async def until(pred, what, timeout=20):
                    """Reads the view up to a message matching `pred`, keeping the tailed lines."""
                    deadline = time.time() + timeout
                    while True:
                        try:
                            m = json.loads(await asyncio.wait_for(view.recv(), max(0.01, deadline - time.time())))
                        except asyncio.TimeoutError:
                            raise AssertionError(f"no {what} in the live view within {timeout} s (tailed: {tailed})")
                        f = m.get("frame", {})
                        found = None
                        for x in (f.get("messages") or [f]):
                            if x.get("type") == "log" and x.get("tail") == job["id"]:
                                tailed.append(x)
                            if found is None and pred(x):
                                found = x
                        if found is not None:
                            return found

                def status(ref, state):  # the box's report, as it passes through the live view
                    return lambda x: x.get("type") == "command_status" and x.get("ref") == ref and x.get("state") == state

                job = await asyncio.to_thread(issue, hub, "log_tail", {"device": "tail-1"}, {"durationSec": 3})
                await until(status(job["id"], "in_progress"), "log_tail in progress")
                # Another command makes the box log a line ("command ID message received").
                other = await asyncio.to_thread(issue, hub, "message", {"device": "tail-1"}, {"text": "tail me"})
                # The tail ends by itself after durationSec ...
                ended = await until(status(job["id"], "succeeded"), "end of the log_tail")
                # ... and a line the box logs after that is not tailed. The box sends a tailed line
                # before the statuses of the command that logged it, so once the view has that
                # command's "succeeded", any tailed line about it would have come through.
                after = await asyncio.to_thread(issue, hub, "message", {"device": "tail-1"}, {"text": "after the tail"})
                await until(status(after["id"], "succeeded"), "the later command's success")
                return job, other, ended, after, tailed

        job, other, ended, after, tailed = asyncio.run(main())
        assert any(other["id"] in x["text"] for x in tailed), tailed
        # the box stops after durationSec: by itself (not stopped), and tails nothing after
        assert "stoppedBy" not in (ended.get("result") or {}), ended
        assert not any(after["id"] in x["text"] for x in tailed), tailed
        e = wait_state(hub, job["id"], "tail-1", "SUCCEEDED", timeout=20)
        assert e["result"]["lines"] >= 1
        wait_for(lambda: db_of(hub).logs.count_documents({"d": "tail-1", "tail": job["id"]}) >= 1, what="tailed lines stored")
    finally:
        stop(p)


def test_a_fleet_query_reaches_matching_boxes_on_both_nodes_and_offline_ones_on_connect(make_hub, tmpdir_path):
    a = make_hub(extra_args=["--heartbeat", "1"]).start()
    b = make_hub(extra_args=["--heartbeat", "1"], database=a.database).start()
    secrets = {d: a.register(d, model=m) for d, m in
               [("fl-a", "fleet-x"), ("fl-b", "fleet-x"), ("fl-other", "argus-sim-1"), ("fl-off", "fleet-x")]}
    s, body, _ = a.call("POST", "/api/v1/commands", {"name": "reboot", "target": {"query": {"model": "fleet-none"}}})
    assert s == 400 and "matches no devices" in body["error"]["message"], body
    procs = [start_agent(a, tmpdir_path, "fl-a", secrets["fl-a"], "--model", "fleet-x"),
             start_agent(b, tmpdir_path, "fl-b", secrets["fl-b"], "--model", "fleet-x"),
             start_agent(a, tmpdir_path, "fl-other", secrets["fl-other"])]
    try:
        for d, h in [("fl-a", a), ("fl-b", b), ("fl-other", a)]:
            h.wait_device(d, lambda x: x["online"], timeout=20)
        # Issued on A: A matches its own sessions, B hears of the small job document and
        # matches its own; the box list (for the offline box) is resolved afterwards.
        job = issue(a, "message", {"query": {"model": "fleet-x"}}, {"text": "fleet"})
        assert job["spec"] == {"model": "fleet-x"} and job["count"] == 3, job
        for d in ("fl-a", "fl-b"):
            wait_state(a, job["id"], d, "SUCCEEDED")
        s, _, _ = a.call("GET", f"/api/v1/commands/{job['id']}/executions/fl-other")
        assert s == 404
        assert execution(a, job["id"], "fl-off")["state"] == "QUEUED"
        # Every box, issued on B.
        everyone = issue(b, "reload_portal", {"all": True})
        assert everyone["count"] == 4, everyone
        for d in ("fl-a", "fl-b", "fl-other"):
            wait_state(b, everyone["id"], d, "SUCCEEDED")
        procs.append(start_agent(b, tmpdir_path, "fl-off", secrets["fl-off"], "--model", "fleet-x"))
        wait_state(a, job["id"], "fl-off", "SUCCEEDED")
        wait_state(a, everyone["id"], "fl-off", "SUCCEEDED")
        time.sleep(1.5)
    finally:
        for p, _ in procs:
            stop(p)
    for d in secrets:
        text = (tmpdir_path / f"{d}.log").read_text(errors="replace")
        assert text.count(f"command {everyone['id']}: received") == 1, d
        assert text.count(f"command {job['id']}: received") == (0 if d == "fl-other" else 1), d
    _, full, _ = a.call("GET", f"/api/v1/commands/{job['id']}", expect=200)
    assert full["executions"]["SUCCEEDED"] == 3 and sum(full["executions"].values()) == 3, full
    _, audit, _ = a.call("GET", "/api/v1/audit?action=command.create", expect=200)
    counts = {x.get("target"): x["parameters"].get("count") for x in audit["items"]}
    assert counts[job["id"]] == "3", audit
