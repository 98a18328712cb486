"""API fuzzing (issue 12, "Shown by"): schemathesis generates requests from docs/openapi.yaml
and sends them to a live hub. Every answer must be no server error (no 5xx at all: the store is
up, so not even the documented 503), carry a status the spec names for that route, and have a
body that matches the schema of that status.

- as admin, valid requests (random, and with the ids and bodies of the records the fixture
  made, which reach the 2xx);
- as admin, invalid requests (schemathesis' negative mode): each must also be refused with a
  4xx (`negative_data_rejection`), or the spec is wrong or a 400 is missing;
- as `viewer`, `analyst` and `support`, valid requests: the routes the role may not call answer
  the documented 403, and no box is registered or revoked.

Bounded: a few examples per operation (ARGUS_FUZZ_EXAMPLES, default 12), no shrinking, and a
wall-time budget per pass (ARGUS_FUZZ_SECONDS, default 75 s) after which the remaining
operations are skipped and named; CI runs the whole spec well inside the budget. The examples
are derandomized so that a CI failure is reproducible; set ARGUS_FUZZ_RANDOM=1 to explore.

Every failure of every operation is collected and reported at once, so one run shows the
whole picture rather than the first defect.
"""
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
import warnings

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from conftest import ROOT
from helpers import issue, start_agent, stop_agent, wait_state

EXAMPLES = int(os.environ.get("ARGUS_FUZZ_EXAMPLES", "12"))
BUDGET_SECONDS = float(os.environ.get("ARGUS_FUZZ_SECONDS", "75"))
RANDOM = os.environ.get("ARGUS_FUZZ_RANDOM") == "1"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Invalid requests must also be refused (4xx): a value the spec forbids and the hub takes
# means the spec is wrong or a 400 is missing.
NEGATIVE_CHECKS = CHECKS + [negative_data_rejection]

# Operations not fuzzed, and why. Everything else in the spec is, destructive ones included:
# the hub and its database are this test's own, so a factory reset or firmware update reaches
# only the simulated box and offline records, a revoke only a random id (the known ids leave
# revoke out, so the boxes the other calls need stay), an EPG import only its own guide, and a
# training request finds too little viewing and ends at once. Batch registration is bounded by
# its body limit (1 MiB, 1,000 boxes), and SecantusDB takes that in about a second.
EXCLUDED = {
    # A WebSocket upgrade; without one it answers 426, which test_access.py and test_live.py
    # cover. Fuzzing the query only re-checks that 426, and an upgrade would hold a stream open.
    ("GET", "/api/v1/live"): "WebSocket stream",
    # Revoking the fuzzing token itself (its id is listed by GET /api/v1/tokens and can be
    # drawn) would turn every later answer into a 401; a random id is covered by test_access.py.
    ("DELETE", "/api/v1/tokens/{id}"): "could revoke the fuzzing token",
}


def load_schema():
    schema = schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.yaml"))
    # No query parameters beyond the spec's: the hub ignores unknown ones (docs/api.md), except
    # the ratings routes, which refuse them; a request with an extra one is not invalid.
    schema.config.generation.update(allow_extra_parameters=False)
    # The token is the test's to give (valid, or a role's); 401s are test_access.py's.
    schema.config.generation.update(with_security_parameters=False)
    return schema


XMLTV = (b'<?xml version="1.0"?><tv><channel id="ch1"><display-name>One</display-name></channel>'
         b'<programme start="20261201180000 +0000" stop="20261201190000 +0000" channel="ch1"><title>News</title></programme></tv>')
DAY = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}


def known(hub, op):
    """Values that reach past the 400s and 404s to the 2xx (and a rollout's 409s): ids of the
    records the fixture made, a valid time range, a valid body, as keyword arguments of
    `as_strategy`, one set per strategy. Random values only ever reach the refusals; each
    operation is fuzzed with both."""
    path = op.path
    ids = {}
    if path == "/api/v1/commands/{id}/executions/{device}/result":
        # A log pull's result is text, a diagnostics result JSON: both media types are checked.
        return [{"path_parameters": {"id": job, "device": "fuzz-box-2"}} for job in hub.known["results"]]
    elif path.startswith("/api/v1/commands/{id}"):
        ids = {"id": hub.known["job"], "device": "fuzz-box-1"}
    elif path.startswith("/api/v1/rollouts/{id}"):
        ids = {"id": hub.known["rollout"]}
    elif path.startswith("/api/v1/firmware/{version}"):
        ids = {"version": "9.9.9"}
    elif path.startswith("/api/v1/devices/{id}") and path != "/api/v1/devices/{id}/revoke":
        ids = {"id": "fuzz-box-2"}
    kw = {"path_parameters": {k: v for k, v in ids.items() if "{" + k + "}" in path}} if ids else {}
    if path in ("/api/v1/ratings", "/api/v1/ratings/programmes"):
        kw["query"] = dict(DAY)
    elif (op.method.upper(), path) == ("POST", "/api/v1/rollouts"):
        kw["body"] = {"firmware": "9.9.9", "target": {"tag": "lab"}}
    elif (op.method.upper(), path) == ("PUT", "/api/v1/firmware/{version}/image"):
        kw["body"], kw["media_type"] = hub.known["image"], "application/octet-stream"
    elif (op.method.upper(), path) == ("PUT", "/api/v1/epg/sources/{id}"):
        kw["body"], kw["media_type"] = XMLTV, "application/xml"  # bytes: sent as they are
    return [kw] if kw else []


def fuzz(hub, token, mode=GenerationMode.POSITIVE, examples=EXAMPLES, budget=BUDGET_SECONDS):
    """Runs every operation of the spec against the hub; returns (failures, skipped, statuses
    seen per operation)."""
    schema = load_schema()
    headers = {"Authorization": f"Bearer {token}"}
    failures, skipped, calls = [], [], {}
    deadline = time.monotonic() + budget
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in EXCLUDED:
            continue
        if time.monotonic() > deadline:
            skipped.append(op.label)
            continue
        statuses = calls.setdefault(op.label, {})
        strategy = op.as_strategy(generation_mode=mode)
        strategy = st.one_of(strategy, *(op.as_strategy(generation_mode=mode, **kw) for kw in known(hub, op)))

        @settings(max_examples=examples, deadline=None, database=None, derandomize=not RANDOM,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            response = case.call(base_url=hub.api, headers=headers, timeout=15)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            # A CSV body is free text, checked row by row (a bad row is answered `invalid`, 200):
            # no CSV body violates the spec, whatever negative mode makes of it.
            negative = mode == GenerationMode.NEGATIVE and case.media_type != "text/csv"
            case.validate_response(response, checks=NEGATIVE_CHECKS if negative else CHECKS, headers=headers)

        try:
            run()
        except Unsatisfiable:
            # Negative mode only: nothing of this operation can be made invalid (no body, no
            # query, a path string that any value satisfies).
            assert mode == GenerationMode.NEGATIVE, op.label
            calls.pop(op.label, None)
        except (Exception, BaseExceptionGroup) as e:  # every failure of every operation is reported
            failures.append(f"{op.label} ({mode.value}): {type(e).__name__}: {str(e)[:1500]}")
    return failures, skipped, calls


@pytest.fixture
def fuzz_hub(make_hub, tmpdir_path):
    """A hub with a little of everything (boxes, one of them a connected simulated box with
    telemetry and command results, jobs, a firmware with its image, a rollout), so that listing
    routes answer with real records, every optional field of a box shows, and known ids reach
    their 200s."""
    hub = make_hub(extra_args=["--heartbeat", "1"]).start()
    hub.register("fuzz-box-1", tags=["lab"])
    agent, _ = start_agent(hub, tmpdir_path, "fuzz-box-2", hub.register("fuzz-box-2"))
    hub.wait_device("fuzz-box-2", lambda d: d["online"], timeout=20)
    pull = issue(hub, "log_pull", {"device": "fuzz-box-2"}, {"lines": 20})["id"]
    diagnostics = issue(hub, "diagnostics", {"device": "fuzz-box-2"})["id"]
    wait_state(hub, pull, "fuzz-box-2", "SUCCEEDED")
    wait_state(hub, diagnostics, "fuzz-box-2", "SUCCEEDED", timeout=40)
    job = hub.call("POST", "/api/v1/commands", {"name": "reboot", "target": {"device": "fuzz-box-1"}}, expect=201)[1]
    hub.call("POST", "/api/v1/commands", {"name": "message", "params": {"text": "hi"}, "target": {"tag": "lab"}}, expect=201)
    image = b"fuzz image" * 10
    hub.call("POST", "/api/v1/firmware", {"version": "9.9.9", "models": ["argus-sim-1"], "size": len(image),
                                          "sha256": hashlib.sha256(image).hexdigest()}, expect=201)
    req = urllib.request.Request(hub.api + "/api/v1/firmware/9.9.9/image", data=image, method="PUT",
                                 headers={"Authorization": f"Bearer {hub.token}", "Content-Type": "application/octet-stream"})
    assert urllib.request.urlopen(req, timeout=10).status == 200
    rollout = hub.call("POST", "/api/v1/rollouts", {"firmware": "9.9.9", "target": {"tag": "lab"}}, expect=201)[1]
    hub.known = {"job": job["id"], "rollout": rollout["id"], "image": image, "results": [pull, diagnostics]}
    yield hub
    stop_agent(agent)


def report(failures, skipped, calls):
    for label, statuses in sorted(calls.items()):
        print(f"{label}: {dict(sorted(statuses.items()))}")
    if skipped:
        warnings.warn(f"fuzzing skipped after the time budget: {skipped}")


def test_every_operation_as_admin_answers_as_documented(fuzz_hub):
    started = time.monotonic()
    failures, skipped, calls = fuzz(fuzz_hub, fuzz_hub.token)
    report(failures, skipped, calls)
    print(f"admin pass: {sum(sum(s.values()) for s in calls.values())} calls in {time.monotonic() - started:.1f} s")
    assert failures == [], "\n\n".join(failures)
    reached = sorted(label for label, s in calls.items() if any(200 <= c < 300 for c in s))
    assert len(reached) >= 35, f"only these operations reached a 2xx: {reached}"
    assert fuzz_hub.proc.poll() is None, "the hub died under fuzzing"
    assert fuzz_hub.call("GET", "/healthz", token=False)[0] == 200


def test_invalid_requests_as_admin_are_answered_with_documented_errors(fuzz_hub):
    """Negative mode: schemathesis breaks the spec (wrong types, missing required fields and
    parameters, out-of-range values); the hub must still answer with a documented status and
    body (400 naming the parameter, mostly), never a 5xx."""
    started = time.monotonic()
    failures, skipped, calls = fuzz(fuzz_hub, fuzz_hub.token, mode=GenerationMode.NEGATIVE, examples=max(4, EXAMPLES // 2))
    report(failures, skipped, calls)
    print(f"negative pass: {sum(sum(s.values()) for s in calls.values())} calls in {time.monotonic() - started:.1f} s")
    assert failures == [], "\n\n".join(failures)
    assert sum(s.get(400, 0) for s in calls.values()) >= 50
    assert fuzz_hub.proc.poll() is None, "the hub died under fuzzing"


@pytest.mark.parametrize("role", ["viewer", "analyst", "support"])
def test_every_operation_as_a_lower_role_answers_as_documented_and_forbidden_ones_403(fuzz_hub, role):
    """The roles that may not change the fleet's registry: what their role allows answers as
    documented, everything else is the documented 403, and no box was registered or revoked."""
    _, t, _ = fuzz_hub.call("POST", "/api/v1/tokens", {"name": f"fuzz-{role}", "role": role}, expect=201)
    _, access, _ = fuzz_hub.call("GET", "/api/v1/access", token=t["token"], expect=200)
    allowed = {(r["method"], r["path"]) for r in access["routes"] if r["kind"] == "route" and r["allowed"]}
    failures, skipped, calls = fuzz(fuzz_hub, t["token"], examples=max(2, EXAMPLES // 4))
    report(failures, skipped, calls)
    assert failures == [], "\n\n".join(failures)
    wrong = []
    for label, statuses in calls.items():
        method, path = label.split(" ", 1)
        if (method, path) not in allowed and set(statuses) != {403}:
            wrong.append((label, statuses))
    assert wrong == []
    assert any(set(statuses) - {403} for statuses in calls.values()), "the role reached nothing"
    # No box was registered or revoked: the two are still the only ones, and unrevoked.
    _, devices, _ = fuzz_hub.call("GET", "/api/v1/devices", expect=200)
    assert sorted((d["id"], d["revoked"]) for d in devices["items"]) == [("fuzz-box-1", False), ("fuzz-box-2", False)]


# Regressions for what the fuzzer found (each was seen failing before its fix).

def raw(hub, method, path, data: bytes, content_type="application/json"):
    req = urllib.request.Request(hub.api + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {hub.token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_a_rollout_action_with_an_invalid_body_is_refused_naming_it_and_changes_nothing(fuzz_hub):
    """Pause and abort took any body: `false`, a NUL byte or {"reason": 5} paused or aborted
    the rollout with the default reason. Now an empty body still gives the default reason, and
    any other body must be {"reason": "..."} (1 to 500 characters)."""
    rollout = fuzz_hub.known["rollout"]
    for action in ("pause", "abort"):
        for body, message in [(b"false", "body must be a JSON object"), (b"\x00", "body is not valid JSON"),
                              (b'{"reason": 5}', "wrong type for reason"), (b'{"reason": ""}', "reason must be 1 to 500 characters"),
                              (json.dumps({"reason": "x" * 501}).encode(), "reason must be 1 to 500 characters")]:
            status, answer = raw(fuzz_hub, "POST", f"/api/v1/rollouts/{rollout}/{action}", body)
            assert status == 400 and answer["error"]["message"].startswith(message), (action, body, status, answer)
            assert fuzz_hub.call("GET", f"/api/v1/rollouts/{rollout}", expect=200)[1]["state"] == "running"
    status, paused = raw(fuzz_hub, "POST", f"/api/v1/rollouts/{rollout}/pause", b"")
    assert status == 200 and paused["state"] == "paused" and paused["reason"] == "paused by bootstrap", paused
    status, resumed = raw(fuzz_hub, "POST", f"/api/v1/rollouts/{rollout}/resume", b"")
    assert status == 200 and resumed["state"] == "running", resumed
    status, aborted = raw(fuzz_hub, "POST", f"/api/v1/rollouts/{rollout}/abort", b'{"reason": "fuzzed"}')
    assert status == 200 and aborted["state"] == "aborted" and aborted["reason"] == "fuzzed", aborted
    # The default reason of an abort read `abortd by …`.
    second = fuzz_hub.call("POST", "/api/v1/rollouts", {"firmware": "9.9.9", "target": {"tag": "lab"}}, expect=201)[1]
    status, aborted = raw(fuzz_hub, "POST", f"/api/v1/rollouts/{second['id']}/abort", b"")
    assert status == 200 and aborted["reason"] == "aborted by bootstrap", aborted


def test_ratings_times_before_the_epoch_or_on_days_that_do_not_exist_are_400s(fuzz_hub):
    """`/ratings/export?day=0001-01-01` answered 503 (the store is unavailable), and
    `/ratings?from=0001-01-01T00:00:00Z` answered `"from": "0-12-30T00:00:00Z"`; February 30
    was read as March 2 everywhere a time is taken."""
    cases = [
        ("/api/v1/ratings/export?day=0001-01-01", "day: before 1970-01-01"),
        ("/api/v1/ratings/export?day=1969-12-31", "day: before 1970-01-01"),
        ("/api/v1/ratings/export?day=2026-02-30", "day: required, a UTC date"),
        ("/api/v1/ratings?from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z", "from: before 1970-01-01"),
        ("/api/v1/ratings/programmes?from=1969-12-31T00:00:00Z&to=1970-01-01T00:00:00Z", "from: before 1970-01-01"),
        ("/api/v1/ratings?from=2026-02-30T00:00:00Z&to=2026-03-03T00:00:00Z", "from: malformed time"),
        ("/api/v1/audit?before=2026-02-30T00:00:00Z", "before must be an ISO 8601 time"),
        ("/api/v1/devices/fuzz-box-1/metrics?from=2026-11-31T00:00:00Z", "from must be an ISO 8601 time"),
    ]
    for path, message in cases:
        status, body, _ = fuzz_hub.call("GET", path)
        assert status == 400 and body["error"]["message"].startswith(message), (path, status, body)
    status, csv, _ = fuzz_hub.call("GET", "/api/v1/ratings/export?day=1970-01-01")
    assert status == 200 and csv.startswith("box,minute,channel,mode")
