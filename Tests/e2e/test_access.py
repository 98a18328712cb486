"""The role matrix (issue 12, item 3): every route and live stream, for every role, against a
real hub. The expectations come from `GET /api/v1/access`, the hub's own table, not a copy."""
import asyncio
import re

import pytest
import websockets
from websockets.exceptions import InvalidStatus

ROLES = ["admin", "operator", "support", "analyst", "viewer"]


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


def concrete(path):
    """A pattern's parameters filled with values no record has: allowed calls end in 400/404,
    never in a change."""
    return re.sub(r"\{(\w+)\}", lambda m: f"matrix-no-{m.group(1)}", path)


def tokens_for_every_role(hub):
    out = {}
    for role in ROLES:
        _, t, _ = hub.call("POST", "/api/v1/tokens", {"name": f"matrix-{role}", "role": role}, expect=201)
        assert t["role"] == role and t["token"].startswith("argus_")
        out[role] = t["token"]
    return out


def test_every_route_and_stream_for_every_role_follows_the_access_table(hub):
    tokens = tokens_for_every_role(hub)
    _, table, _ = hub.call("GET", "/api/v1/access", expect=200)
    assert table["role"] == "admin" and table["roles"] == ROLES
    routes = [r for r in table["routes"] if r["kind"] == "route"]
    streams = [r for r in table["routes"] if r["kind"] == "stream"]
    assert len(routes) >= 40 and {s["path"] for s in streams} == {"/api/v1/live?device={id}", "/api/v1/live?fleet=1"}
    # Every role reads the same table, with `allowed` for itself.
    for role, token in tokens.items():
        _, mine, _ = hub.call("GET", "/api/v1/access", token=token, expect=200)
        assert mine["role"] == role and mine["token"]["name"] == f"matrix-{role}"
        assert [(r["method"], r["path"], r["roles"]) for r in mine["routes"]] == [(r["method"], r["path"], r["roles"]) for r in table["routes"]]
        assert all(r["allowed"] == (role in r["roles"]) for r in mine["routes"] + mine["commands"])

    wrong = []
    for r in routes:
        path = concrete(r["path"])
        body = {} if r["method"] in ("POST", "PUT") else None
        status, payload, headers = hub.call(r["method"], path, body, token=False)
        if status != 401 or not headers["WWW-Authenticate"].startswith("Bearer"):
            wrong.append((r["method"], path, "no token", status))
        status = hub.call(r["method"], path, body, token="argus_not-a-real-token")[0]
        if status != 401:
            wrong.append((r["method"], path, "bad token", status))
        for role, token in tokens.items():
            status, payload, _ = hub.call(r["method"], path, body, token=token)
            if role in r["roles"]:
                if status in (401, 403):
                    wrong.append((r["method"], path, role, status, payload))
            elif status != 403 or role not in payload["error"]["message"]:
                wrong.append((r["method"], path, role, status, payload))
    assert wrong == []

    async def streams_walk():
        out = []
        for s in streams:
            query = concrete(s["path"]).split("?", 1)[1]
            url = f"ws://127.0.0.1:{hub.api_port}/api/v1/live?{query}"
            for role, token in tokens.items():
                try:
                    ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"})
                    await ws.close()
                    opened = True
                except InvalidStatus:
                    opened = False
                if opened != (role in s["roles"]):
                    out.append((s["path"], role, "opened" if opened else "refused"))
            with pytest.raises(InvalidStatus):
                await websockets.connect(url)
        return out

    assert run(streams_walk()) == []
    # The same URLs without the upgrade say why: 401 without a token, 403 for a role not named.
    for s in streams:
        path = concrete(s["path"])
        assert hub.call("GET", path, token=False)[0] == 401
        for role, token in tokens.items():
            assert hub.call("GET", path, token=token)[0] == (426 if role in s["roles"] else 403), (path, role)
    # Each refusal reached the audit log with the role that was refused.
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=api.refused&limit=1000", expect=200)
    refused = {(a["actor"], a["target"]) for a in audit["items"] if a["result"].startswith("refused 403")}
    assert ("matrix-viewer", "/api/v1/tokens") in refused and ("matrix-support", "/api/v1/rollouts") in refused


def test_command_kinds_follow_the_table_when_sent_and_when_cancelled(hub):
    tokens = tokens_for_every_role(hub)
    hub.register("matrix-box")
    _, table, _ = hub.call("GET", "/api/v1/access", expect=200)
    kinds = {c["name"]: c["roles"] for c in table["commands"]}
    route = next(r["roles"] for r in table["routes"] if (r["method"], r["path"]) == ("POST", "/api/v1/commands"))
    assert set(kinds["reboot"]) == {"admin", "operator", "support"}
    assert kinds["factory_reset"] == ["admin"] and "support" not in kinds["firmware_update"]
    for name, roles in kinds.items():
        for role, token in tokens.items():
            # An unknown box: an allowed role gets the planner's 400, the others 403 first.
            status, payload, _ = hub.call("POST", "/api/v1/commands", {"name": name, "target": {"device": "matrix-none"}}, token=token)
            if role in roles:
                assert status == 400, (name, role, status, payload)
            elif role in route:
                assert status == 403 and f"the command {name} needs" in payload["error"]["message"], (name, role, payload)
            else:
                assert status == 403 and "POST /api/v1/commands needs" in payload["error"]["message"], (name, role, payload)

    def job(name):
        return hub.call("POST", "/api/v1/commands", {"name": name, "target": {"device": "matrix-box"}}, expect=201)[1]["id"]

    reset, reboot = job("factory_reset"), job("reboot")
    for role in ("operator", "support"):
        status, payload, _ = hub.call("POST", f"/api/v1/commands/{reset}/cancel", token=tokens[role])
        assert status == 403 and "cancelling a factory_reset job needs the admin role" in payload["error"]["message"], payload
    hub.call("POST", f"/api/v1/commands/{reboot}/cancel", token=tokens["support"], expect=200)
    hub.call("POST", f"/api/v1/commands/{reset}/cancel", token=tokens["admin"], expect=200)
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.cancel", expect=200)
    results = sorted((a["actor"], a["result"].split(":")[0]) for a in audit["items"])
    assert results == [("matrix-admin", "ok"), ("matrix-operator", "refused 403"), ("matrix-support", "ok"), ("matrix-support", "refused 403")]
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=command.create", expect=200)
    assert any(a["actor"] == "matrix-support" and a["result"].startswith("rejected: the command factory_reset needs") for a in audit["items"])


def test_a_token_of_an_unknown_role_is_refused_naming_the_five(hub):
    status, body, _ = hub.call("POST", "/api/v1/tokens", {"name": "x", "role": "superuser"})
    assert status == 400 and body["error"]["message"] == "role must be one of admin, operator, support, analyst, viewer"


def test_the_openapi_document_lists_exactly_the_tables_routes_with_their_roles(hub):
    """docs/openapi.yaml (issue 12, item 4) against `GET /api/v1/access`, both ways: every
    route of the table is in the spec with the same roles (`x-roles`), and the spec has no
    other path or method; the same for the live streams and the command kinds."""
    import yaml
    from conftest import ROOT
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert spec["openapi"].startswith("3.1")
    _, table, _ = hub.call("GET", "/api/v1/access", expect=200)
    in_table = {(r["method"].lower(), r["path"]): r["roles"] for r in table["routes"] if r["kind"] == "route"}
    in_spec = {(m, p): op["x-roles"] for p, ops in spec["paths"].items() for m, op in ops.items()}
    assert sorted(set(in_table) - set(in_spec)) == [], "routes of the table missing from docs/openapi.yaml"
    assert sorted(set(in_spec) - set(in_table)) == [], "routes of docs/openapi.yaml the hub does not have"
    assert {k: v for k, v in in_spec.items() if in_table[k] != v} == {}, "x-roles differ from the table"
    streams = {r["path"]: r["roles"] for r in table["routes"] if r["kind"] == "stream"}
    assert {s["path"]: s["x-roles"] for s in spec["x-streams"]} == streams
    assert spec["x-commands"] == {c["name"]: c["roles"] for c in table["commands"]}
    # Every response an operation names resolves to a component.
    for p, ops in spec["paths"].items():
        for m, op in ops.items():
            assert {"401", "403"} <= set(op["responses"]), (m, p)
            for r in op["responses"].values():
                if "$ref" in r:
                    assert r["$ref"].rsplit("/", 1)[1] in spec["components"]["responses"], (m, p, r)
