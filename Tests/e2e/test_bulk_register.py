"""Bulk registration: POST /api/v1/devices:batch with JSON and CSV bodies (docs/api.md)."""
import asyncio
import json
import re
import urllib.error
import urllib.request

import websockets

from conftest import basic, hello, wait_for

BATCH = "/api/v1/devices:batch"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def post(hub, body: bytes, content_type="application/json", token=None):
    """POSTs raw bytes to the batch route; returns (status, json-or-text)."""
    req = urllib.request.Request(hub.api + BATCH, data=body, method="POST")
    req.add_header("Authorization", f"Bearer {token or hub.token}")
    req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def post_json(hub, devices, **kw):
    return post(hub, json.dumps({"devices": devices}).encode(), **kw)


def exists(hub, device_id):
    status = hub.call("GET", f"/api/v1/devices/{device_id}")[0]
    assert status in (200, 404), status
    return status == 200


def all_ids(hub):
    ids, cursor = [], None
    while True:
        q = "/api/v1/devices?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = hub.call("GET", q, expect=200)[1]
        ids += [d["id"] for d in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            return ids


def says_welcome(hub, device_id, secret):
    async def main():
        async with await websockets.connect(hub.ws_url, additional_headers=basic(device_id, secret), open_timeout=10) as ws:
            await ws.send(hello())
            return json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "welcome"

    return run(main())


def audits(hub, action):
    return hub.call("GET", f"/api/v1/audit?action={action}", expect=200)[1]["items"]


def test_json_batch_gives_a_result_per_box_and_stores_only_the_valid_new_ones(hub):
    old_secret = hub.register("bb-old", tags=["first"])
    devices = [
        {"id": "bb-1", "model": "acme-4k", "tags": ["lab", "floor-2"]},  # 0 created
        {"id": "bb-2", "model": "acme-hd"},                               # 1 created, no tags
        {"id": "bb-1", "model": "other"},                                 # 2 repeated in the batch
        {"id": "bb-old", "model": "acme-4k"},                             # 3 already registered
        {"id": "bad id!", "model": "acme-4k"},                            # 4 invalid id
        {"id": "bb-3"},                                                   # 5 no model
        42,                                                               # 6 not an object
        {"id": "bb-4", "model": "acme-4k", "tags": "lab"},                # 7 tags not a list
        {"id": "bb-5", "model": "acme-4k", "colour": "red"},              # 8 unknown field
        {"id": "bb-6", "model": "acme-4k", "tags": []},                   # 9 created
    ]
    status, body = post_json(hub, devices)
    assert status == 200, body
    res = body["results"]
    assert [r["index"] for r in res] == list(range(10))
    assert [r["status"] for r in res] == ["created", "created", "invalid", "exists", "invalid",
                                          "invalid", "invalid", "invalid", "invalid", "created"], res
    assert [r.get("id") for r in res] == ["bb-1", "bb-2", "bb-1", "bb-old", None, "bb-3", None, "bb-4", "bb-5", "bb-6"]
    assert (body["created"], body["exists"], body["invalid"]) == (3, 1, 6)
    # Secrets only for the created boxes, each new; reasons only for the invalid ones.
    secrets = {r["id"]: r["secret"] for r in res if r["status"] == "created"}
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", s) for s in secrets.values()) and len(set(secrets.values())) == 3
    assert all("secret" not in r for r in res if r["status"] != "created")
    assert all("reason" not in r for r in res if r["status"] != "invalid")
    reasons = [r.get("reason", "") for r in res]
    assert "duplicate id in this batch (first at index 0)" == reasons[2]
    assert reasons[4].startswith("id must be") and reasons[5] == "model must be a string"
    assert reasons[6].startswith("not an object") and reasons[7] == "tags must be an array of strings"
    assert reasons[8] == "unknown field colour"

    # Stored: exactly the three new boxes (and the earlier one), with their models and tags.
    assert sorted(all_ids(hub)) == ["bb-1", "bb-2", "bb-6", "bb-old"]
    assert (hub.device("bb-1")["model"], hub.device("bb-1")["tags"]) == ("acme-4k", ["lab", "floor-2"])
    assert (hub.device("bb-2")["model"], hub.device("bb-2")["tags"]) == ("acme-hd", [])
    assert hub.device("bb-old")["tags"] == ["first"]  # the existing box was not overwritten
    # A created box connects with the secret it was given; the existing one keeps its own.
    assert says_welcome(hub, "bb-1", secrets["bb-1"])
    assert says_welcome(hub, "bb-old", old_secret)

    # One audit entry with the counts, not one per box.
    entries = audits(hub, "device.register_batch")
    assert len(entries) == 1, entries
    assert entries[0]["parameters"] == {"format": "json", "rows": "10", "created": "3", "exists": "1", "invalid": "6"}
    assert len(audits(hub, "device.register")) == 1  # only hub.register's

    # Sent again: the created boxes now exist, and no new secret is given.
    status, again = post_json(hub, devices[:2])
    assert status == 200 and [r["status"] for r in again["results"]] == ["exists", "exists"], again
    assert (again["created"], again["exists"], again["invalid"]) == (0, 2, 0)
    assert says_welcome(hub, "bb-2", secrets["bb-2"])


def test_csv_batch_with_header_malformed_rows_and_repeats(hub):
    hub.register("cc-old")
    csv = ("id,model,tags\r\n"
           "cc-1,acme-4k,lab;floor-2\r\n"     # line 2, index 0: created, two tags
           " cc-2 , acme-hd \r\n"             # line 3, index 1: created, spaces ignored, no tags
           "\r\n"                             # line 4: blank, skipped
           "cc-3,acme-4k,a,b\r\n"             # line 5, index 2: four fields
           "cc-4\r\n"                         # line 6, index 3: one field
           "cc-1,acme-4k\r\n"                 # line 7, index 4: repeated
           "cc-old,acme-4k\r\n"               # line 8, index 5: exists
           "cc-5,acme 4k\r\n"                 # line 9, index 6: bad model
           "cc-6,acme-4k,a;;b\r\n"            # line 10, index 7: empty tag
           "cc-7,acme-4k,")                   # line 11, index 8: created, empty tags, no final newline
    status, body = post(hub, csv.encode(), "text/csv; charset=utf-8")
    assert status == 200, body
    res = body["results"]
    assert [(r["index"], r["line"], r["status"]) for r in res] == [
        (0, 2, "created"), (1, 3, "created"), (2, 5, "invalid"), (3, 6, "invalid"), (4, 7, "invalid"),
        (5, 8, "exists"), (6, 9, "invalid"), (7, 10, "invalid"), (8, 11, "created")], res
    assert (body["created"], body["exists"], body["invalid"]) == (3, 1, 5)
    assert res[2]["reason"] == "line 5: expected id,model[,tags] (2 or 3 fields), got 4"
    assert res[3]["reason"] == "line 6: expected id,model[,tags] (2 or 3 fields), got 1"
    assert res[4]["reason"] == "duplicate id in this batch (first at index 0)"
    assert res[6]["reason"].startswith("line 9: model must be")
    assert res[7]["reason"].startswith("line 10: tags[] must be")
    assert sorted(all_ids(hub)) == ["cc-1", "cc-2", "cc-7", "cc-old"]
    assert hub.device("cc-1")["tags"] == ["lab", "floor-2"] and hub.device("cc-2")["model"] == "acme-hd"
    assert hub.device("cc-7")["tags"] == []
    assert says_welcome(hub, "cc-2", res[1]["secret"])
    entries = audits(hub, "device.register_batch")
    assert len(entries) == 1 and entries[0]["parameters"] == {"format": "csv", "rows": "9", "created": "3", "exists": "1", "invalid": "5"}

    # Without a header the first line is a box.
    status, body = post(hub, b"cc-8,acme-4k,lab\ncc-9,acme-4k\n", "text/csv")
    assert status == 200 and [(r["id"], r["line"], r["status"]) for r in body["results"]] == [
        ("cc-8", 1, "created"), ("cc-9", 2, "created")], body
    assert exists(hub, "cc-8") and exists(hub, "cc-9")


def test_bodies_that_are_not_a_batch_get_400_and_store_nothing(hub):
    for body, ctype, message in [
        (b"hello", "application/json", "body is not valid JSON"),
        (b"id,model\nx-1,m", "text/plain", "body is not valid JSON"),         # not declared CSV: read as JSON
        (b'{"devices": []}', "application/json", "devices is empty"),
        (b'{"devices": {"id": "x-1"}}', "application/json", "devices must be an array"),
        (b'{"boxes": [{"id": "x-1", "model": "m"}]}', "application/json", "unknown field boxes"),
        (b'[{"id": "x-1", "model": "m"}]', "application/json", "body must be a JSON object"),
        (b"x-1,m\x00\x01\x02", "text/csv", "control character"),
        (b"x-1,m,\xff\xfe", "text/csv", "not UTF-8"),
        (b"\n\n", "text/csv", "holds no box"),
        (b"id,name\nx-1,m\n", "text/csv", "CSV header must be"),
    ]:
        status, payload = post(hub, body, ctype)
        assert status == 400, (body, status, payload)
        assert message in payload["error"]["message"], (body, payload)
    assert all_ids(hub) == []
    assert audits(hub, "device.register_batch") == []

    # Past 1 MiB: 413, nothing stored.
    big = json.dumps({"devices": [{"id": f"big-{i:06d}", "model": "m" * 60, "tags": ["t" * 30] * 4} for i in range(5000)]})
    assert len(big) > 1 << 20
    status, payload = post(hub, big.encode())
    assert status == 413, payload
    assert all_ids(hub) == []


def test_over_1000_boxes_the_rest_get_batch_limit_and_the_first_1000_are_created(hub):
    devices = [{"id": f"ov-{i:04d}", "model": "acme-4k"} for i in range(1003)]
    status, body = post_json(hub, devices)
    assert status == 200, str(body)[:500]
    res = body["results"]
    assert len(res) == 1003 and (body["created"], body["exists"], body["invalid"]) == (1000, 0, 3)
    assert all(r["status"] == "created" for r in res[:1000])
    assert [(r["id"], r["status"], r["reason"]) for r in res[1000:]] == [
        (f"ov-{i:04d}", "invalid", "batch limit 1000") for i in range(1000, 1003)]
    assert all_ids(hub) == [f"ov-{i:04d}" for i in range(1000)]
    assert says_welcome(hub, "ov-0999", res[999]["secret"])

    # CSV: the same limit, counted in data rows (the header is not one).
    csv = "id,model\n" + "".join(f"ow-{i:04d},acme-4k\n" for i in range(1001))
    status, body = post(hub, csv.encode(), "text/csv")
    assert status == 200 and (body["created"], body["invalid"]) == (1000, 1), str(body)[:500]
    assert body["results"][1000] == {"index": 1000, "line": 1002, "id": "ow-1000", "status": "invalid", "reason": "batch limit 1000"}
    assert exists(hub, "ow-0999") and not exists(hub, "ow-1000")
    entries = audits(hub, "device.register_batch")
    assert sorted(e["parameters"]["created"] for e in entries) == ["1000", "1000"] and len(entries) == 2


def test_an_analyst_token_gets_403_and_nothing_is_stored(hub):
    _, analyst, _ = hub.call("POST", "/api/v1/tokens", {"name": "ana", "role": "analyst"}, expect=201)
    status, body = post_json(hub, [{"id": "an-1", "model": "acme-4k"}], token=analyst["token"])
    assert status == 403 and "operator" in body["error"]["message"], body
    status, body = post(hub, b"an-2,acme-4k\n", "text/csv", token=analyst["token"])
    assert status == 403, body
    assert not exists(hub, "an-1") and not exists(hub, "an-2")
    assert audits(hub, "device.register_batch") == []
    refused = wait_for(lambda: [a for a in audits(hub, "api.refused") if a["target"] == BATCH], timeout=5, what="refusals audited")
    assert len(refused) == 2 and all(a["result"].startswith("refused 403") for a in refused)
    # An operator token may.
    _, op, _ = hub.call("POST", "/api/v1/tokens", {"name": "opa", "role": "operator"}, expect=201)
    status, body = post_json(hub, [{"id": "an-1", "model": "acme-4k"}], token=op["token"])
    assert status == 200 and body["created"] == 1 and exists(hub, "an-1")


def test_register_fleet_uses_the_batch_route(hub, tmpdir_path):
    import os
    import subprocess
    from conftest import ROOT
    out, other = tmpdir_path / "fleet.secrets", tmpdir_path / "other.secrets"
    env = dict(os.environ, ARGUS_API=hub.api, ARGUS_TOKEN=hub.token)
    script = [str(ROOT / "scripts" / "register-fleet")]
    r = subprocess.run(script + ["7", "rf-", str(out), "--batch-size", "3"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "7 registered" in r.stderr and "batches of 3" in r.stderr, r.stderr
    lines = dict(line.split() for line in out.read_text().splitlines())
    assert sorted(lines) == [f"rf-{i:06d}" for i in range(1, 8)]
    assert says_welcome(hub, "rf-000007", lines["rf-000007"])
    batches = audits(hub, "device.register_batch")
    assert sorted(e["parameters"]["created"] for e in batches) == ["1", "3", "3"] and audits(hub, "device.register") == []
    # Registered before and not in the file: reported, exit 1.
    r = subprocess.run(script + ["2", "rf-", str(other)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "2 already registered elsewhere" in r.stderr, r.stderr
