"""The API routes the console added (issue 12), without a browser: the device list's search,
sort and offset paging, devices:count, bulk tags, a box's executions, the summary's maxAgeSec,
and the fleet stream's presence counters."""
import asyncio
import json

import websockets

from conftest import wait_for
from helpers import connect_and_hello, db_of, issue, run


def ids(page):
    return [d["id"] for d in page["items"]]


def test_list_search_sort_offset_and_count(hub):
    for i in range(7):
        hub.register(f"lst-{i}", model="m-a" if i % 2 else "m-b", tags=["t1"] if i < 3 else [])
    _, page, _ = hub.call("GET", "/api/v1/devices?sort=-id&limit=3", expect=200)
    assert ids(page) == ["lst-6", "lst-5", "lst-4"] and page["nextOffset"] == 3 and "nextCursor" not in page
    _, page, _ = hub.call("GET", "/api/v1/devices?sort=-id&limit=3&offset=6", expect=200)
    assert ids(page) == ["lst-0"] and "nextOffset" not in page
    _, page, _ = hub.call("GET", "/api/v1/devices?q=lst-1&sort=id", expect=200)
    assert ids(page) == ["lst-1"]
    _, page, _ = hub.call("GET", "/api/v1/devices?q=lst&model=m-a&sort=model", expect=200)
    assert ids(page) == ["lst-1", "lst-3", "lst-5"]
    assert hub.call("GET", "/api/v1/devices:count?model=m-b", expect=200)[1] == {"count": 4}
    assert hub.call("GET", "/api/v1/devices:count?tag=t1&q=lst-2", expect=200)[1] == {"count": 1}
    assert hub.call("GET", "/api/v1/devices:count?q=nothing", expect=200)[1] == {"count": 0}
    # The old cursor paging is unchanged.
    _, page, _ = hub.call("GET", "/api/v1/devices?limit=2", expect=200)
    assert ids(page) == ["lst-0", "lst-1"] and page["nextCursor"] == "lst-1"
    for bad, word in (("sort=colour", "sort must be one of"), ("offset=-1", "offset"), ("sort=id&cursor=lst-1", "cursor"),
                      ("q=" + "x" * 65, "q must be")):
        status, body, _ = hub.call("GET", "/api/v1/devices?" + bad)
        assert status == 400 and word in body["error"]["message"], (bad, body)


def test_search_by_address_prefix(hub):
    secret = hub.register("addr-1")

    async def go():
        ws = await connect_and_hello(hub, "addr-1", secret)
        try:
            hub.wait_device("addr-1", lambda d: d["online"] and d.get("remoteAddress"))
            _, page, _ = hub.call("GET", "/api/v1/devices?q=127.0.&sort=id", expect=200)
            assert ids(page) == ["addr-1"]
        finally:
            await ws.close()
    run(go())


def test_bulk_tags_by_list_and_by_filter_audited_and_refusals_change_nothing(hub):
    for i in range(4):
        hub.register(f"tg-{i}", model="tm-1" if i < 3 else "tm-2", tags=["old"])
    _, r, _ = hub.call("POST", "/api/v1/devices:tags", {"target": {"devices": ["tg-0", "tg-1"]}, "add": ["new"], "remove": ["old"]}, expect=200)
    assert r == {"matched": 2}
    assert hub.device("tg-0")["tags"] == ["new"] and hub.device("tg-2")["tags"] == ["old"]
    _, r, _ = hub.call("POST", "/api/v1/devices:tags", {"target": {"query": {"model": "tm-1"}}, "add": ["fleet"]}, expect=200)
    assert r == {"matched": 3}
    assert sorted(hub.device("tg-1")["tags"]) == ["fleet", "new"] and hub.device("tg-3")["tags"] == ["old"]
    # Adding twice does not repeat a tag.
    hub.call("POST", "/api/v1/devices:tags", {"target": {"devices": ["tg-1"]}, "add": ["fleet"]}, expect=200)
    assert sorted(hub.device("tg-1")["tags"]) == ["fleet", "new"]
    before = {d: hub.device(d)["tags"] for d in ("tg-0", "tg-1", "tg-2", "tg-3")}
    for body, word in (({"target": {"devices": ["tg-0"]}}, "add or remove"),
                       ({"target": {"devices": ["tg-0"]}, "add": ["bad tag"]}, "add[]"),
                       ({"target": {"devices": ["tg-0"]}, "add": ["x"], "remove": ["x"]}, "both"),
                       ({"add": ["x"]}, "target is required"),
                       ({"target": {"devices": []}, "add": ["x"]}, "target.devices"),
                       ({"target": {"all": True}, "add": ["x"], "colour": 1}, "colour")):
        status, r, _ = hub.call("POST", "/api/v1/devices:tags", body)
        assert status == 400 and word in r["error"]["message"], (body, r)
    assert {d: hub.device(d)["tags"] for d in before} == before
    _, audit, _ = hub.call("GET", "/api/v1/audit?action=device.tags", expect=200)
    results = [a["result"] for a in audit["items"]]
    assert results.count("ok") == 3 and sum(r.startswith("rejected") for r in results) == 6


def test_a_boxs_executions_newest_first_with_history(hub):
    secret = hub.register("ex-1")

    async def go():
        ws = await connect_and_hello(hub, "ex-1", secret)
        try:
            first = issue(hub, "reboot", {"device": "ex-1"})
            second = issue(hub, "message", {"device": "ex-1"}, params={"text": "hi"})
            _, body, _ = hub.call("GET", "/api/v1/devices/ex-1/executions", expect=200)
            assert [e["job"] for e in body["items"]] == [second["id"], first["id"]]
            assert all(e["history"] and "params" not in e for e in body["items"])
            assert hub.call("GET", "/api/v1/devices/ex-1/executions?limit=1", expect=200)[1]["items"][0]["job"] == second["id"]
            assert hub.call("GET", "/api/v1/devices/nobody/executions", expect=200)[1] == {"items": []}
            assert hub.call("GET", "/api/v1/devices/ex-1/executions?limit=0")[0] == 400
        finally:
            await ws.close()
    run(go())


def test_summary_max_age_and_fleet_presence_counters(hub):
    hub.register("sm-1")
    assert hub.call("GET", "/api/v1/fleet/summary", expect=200)[1]["total"] == 1
    secret = hub.register("sm-2")
    # Within maxAgeSec the node's last summary is answered; without it, always a fresh one.
    assert hub.call("GET", "/api/v1/fleet/summary?maxAgeSec=600", expect=200)[1]["total"] == 1
    assert hub.call("GET", "/api/v1/fleet/summary", expect=200)[1]["total"] == 2
    assert hub.call("GET", "/api/v1/fleet/summary?maxAgeSec=600", expect=200)[1]["total"] == 2
    assert hub.call("GET", "/api/v1/fleet/summary?maxAgeSec=3601")[0] == 400

    async def go():
        url = f"ws://127.0.0.1:{hub.api_port}/api/v1/live?fleet=1"
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {hub.token}"}) as live:
            async def tick():
                while True:
                    m = json.loads(await asyncio.wait_for(live.recv(), 5))
                    if m["type"] == "fleet":
                        return m
            start = await tick()
            box = await connect_and_hello(hub, "sm-2", secret)
            await box.close()
            hub.wait_device("sm-2", lambda d: not d["online"])
            for _ in range(10):
                m = await tick()
                if m["connects"] >= start["connects"] + 1 and m["disconnects"] >= start["disconnects"] + 1:
                    return
            raise AssertionError(f"counters did not move: {start} -> {m}")
    run(go())
    assert db_of(hub).devices.count_documents({}) == 2
    wait_for(lambda: True)
