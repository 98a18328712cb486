"""API fuzzing (issue 12, "Shown by"): schemathesis generates requests from docs/openapi.yaml
and sends them to a live hub. Every answer must be no server error (5xx other than the documented
503 of an unavailable store), carry a status the spec names for that route, and have a body
that matches the schema of that status. The first test runs as admin; the second runs the
same operations as `viewer`, where the routes the viewer may not call must answer the documented
403 (and nothing changes).

Bounded: a few examples per operation (ARGUS_FUZZ_EXAMPLES, default 12), no shrinking, and a
wall-time budget per pass (ARGUS_FUZZ_SECONDS, default 75 s) after which the remaining
operations are skipped and named; CI runs the whole spec well inside the budget. The examples
are derandomized so that a CI failure is reproducible; set ARGUS_FUZZ_RANDOM=1 to explore.

Every failure of every operation is collected and reported at once, so one run shows the
whole picture rather than the first defect.
"""
import hashlib
import os
import time
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from conftest import ROOT

EXAMPLES = int(os.environ.get("ARGUS_FUZZ_EXAMPLES", "12"))
BUDGET_SECONDS = float(os.environ.get("ARGUS_FUZZ_SECONDS", "75"))
RANDOM = os.environ.get("ARGUS_FUZZ_RANDOM") == "1"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Operations not fuzzed, and why. Everything else in the spec is.
EXCLUDED = {
    # A WebSocket upgrade; without one it answers 426, which test_access.py and test_live.py
    # cover. Fuzzing the query only re-checks that 426, and an upgrade would hold a stream open.
    ("GET", "/api/v1/live"): "WebSocket stream",
    # Revoking the fuzzing token itself (its id is listed by GET /api/v1/tokens and can be
    # drawn) would turn every later answer into a 401; a random id is covered by test_access.py.
    ("DELETE", "/api/v1/tokens/{id}"): "could revoke the fuzzing token",
}


def load_schema():
    return schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.yaml"))


def fuzz(hub, token, examples=EXAMPLES, budget=BUDGET_SECONDS):
    """Runs every operation of the spec against the hub; returns (failures, skipped, counts)."""
    schema = load_schema()
    headers = {"Authorization": f"Bearer {token}"}
    failures, skipped, calls = [], [], {}
    deadline = time.monotonic() + budget
    for result in schema.get_all_operations():
        op = result.ok()
        key = (op.method.upper(), op.path)
        if key in EXCLUDED:
            continue
        if time.monotonic() > deadline:
            skipped.append(op.label)
            continue
        statuses = calls.setdefault(op.label, {})

        @settings(max_examples=examples, deadline=None, database=None, derandomize=not RANDOM,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case):
            response = case.call(base_url=hub.api, headers=headers, timeout=15)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as e:  # every failure of every operation is reported
            failures.append(f"{op.label}: {type(e).__name__}: {str(e)[:1500]}")
    return failures, skipped, calls


@pytest.fixture
def fuzz_hub(make_hub):
    """A hub with a little of everything, so that listing routes answer with real records."""
    hub = make_hub(extra_args=["--heartbeat", "1"]).start()
    hub.register("fuzz-box-1", tags=["lab"])
    hub.register("fuzz-box-2")
    hub.call("POST", "/api/v1/commands", {"name": "reboot", "target": {"device": "fuzz-box-1"}}, expect=201)
    hub.call("POST", "/api/v1/commands", {"name": "message", "params": {"text": "hi"}, "target": {"tag": "lab"}}, expect=201)
    image = b"fuzz image" * 10
    hub.call("POST", "/api/v1/firmware", {"version": "9.9.9", "models": ["argus-sim-1"], "size": len(image),
                                          "sha256": hashlib.sha256(image).hexdigest()}, expect=201)
    req = urllib.request.Request(hub.api + "/api/v1/firmware/9.9.9/image", data=image, method="PUT",
                                 headers={"Authorization": f"Bearer {hub.token}", "Content-Type": "application/octet-stream"})
    assert urllib.request.urlopen(req, timeout=10).status == 200
    hub.call("POST", "/api/v1/rollouts", {"firmware": "9.9.9", "target": {"tag": "lab"}}, expect=201)
    return hub


def report(failures, skipped, calls):
    for label, statuses in sorted(calls.items()):
        print(f"{label}: {dict(sorted(statuses.items()))}")
    if skipped:
        print(f"skipped after the time budget: {skipped}")


def test_every_operation_as_admin_answers_as_documented(fuzz_hub):
    started = time.monotonic()
    failures, skipped, calls = fuzz(fuzz_hub, fuzz_hub.token)
    report(failures, skipped, calls)
    print(f"admin pass: {sum(sum(s.values()) for s in calls.values())} calls in {time.monotonic() - started:.1f} s")
    assert failures == [], "\n\n".join(failures)
    assert sum(1 for s in calls.values() if any(200 <= c < 300 for c in s)) >= 20, "too few operations reached a 2xx"
    _, health, _ = fuzz_hub.call("GET", "/healthz")
    assert fuzz_hub.proc.poll() is None, "the hub died under fuzzing"


def test_every_operation_as_viewer_answers_as_documented_and_forbidden_ones_403(fuzz_hub):
    _, t, _ = fuzz_hub.call("POST", "/api/v1/tokens", {"name": "fuzz-viewer", "role": "viewer"}, expect=201)
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
    # The viewer changed nothing: the two boxes are still the only ones, and unrevoked.
    _, devices, _ = fuzz_hub.call("GET", "/api/v1/devices", expect=200)
    assert sorted((d["id"], d["revoked"]) for d in devices["items"]) == [("fuzz-box-1", False), ("fuzz-box-2", False)]
