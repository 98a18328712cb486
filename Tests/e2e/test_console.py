"""The operator console in real headless Chromium (Debian's chromium + chromium-driver, selenium).

One hub with a small simulated fleet (the C agent `stb-agent`) serves /console; the tests sign
in with tokens of different roles and drive the pages. With ARGUS_SCREENSHOTS=1 they also
write docs/screenshots/*.png (CI leaves the tree alone).
"""
import asyncio
import base64
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, Hub, wait_for
from helpers import connect, db_of, now_ms, start_agent, stop_agent

try:
    from selenium import webdriver
    from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # scripts/setup installs it; a bare checkout may not have it yet
    webdriver = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
if webdriver is None:
    pytest.skip("selenium is not installed (scripts/setup installs it into .venv)", allow_module_level=True)
if not CHROMIUM or not CHROMEDRIVER:
    pytest.skip("chromium and chromium-driver are not installed (scripts/setup installs the Debian packages)", allow_module_level=True)

SHOTS = ROOT / "docs" / "screenshots"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
FLEET = 4


def screenshot(driver, name, width=1280):
    """docs/screenshots/NAME.png (the whole page at `width` px), only with ARGUS_SCREENSHOTS=1."""
    if os.environ.get("ARGUS_SCREENSHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(width, 1000)
    time.sleep(0.5)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (SHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
    driver.set_window_size(1280, 900)


def make_driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait(driver, pred, timeout=30, what="condition"):
    def safe(d):
        try:
            return pred(d)
        except (StaleElementReferenceException, JavascriptException):
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(safe)
    except Exception as e:
        raise AssertionError(f"timed out waiting for {what}; page: {driver.find_element(By.TAG_NAME, 'body').text[:1500]}") from e


def text(driver, css):
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else ""


def sign_in(driver, hub, token):
    driver.get(hub.api + "/console#/signin")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    box = wait(driver, lambda d: d.find_element(By.ID, "token"), what="the sign-in form")
    box.send_keys(token)
    driver.find_element(By.ID, "signin-submit").click()
    wait(driver, lambda d: d.find_element(By.ID, "view").get_attribute("data-state") == "ready", what="the first page after sign-in")


def open_page(driver, hub, hash_, timeout=30):
    driver.get(hub.api + "/console#/" + hash_)
    driver.refresh()
    wait(driver, lambda d: d.find_element(By.ID, "view").get_attribute("data-state") == "ready"
         and d.find_element(By.ID, "view").get_attribute("data-page") == hash_.split("/")[0], timeout, f"page {hash_}")


def fetch(driver, method, path, body=None):
    """Calls the API from the page with the signed-in token; returns [status, text]."""
    return driver.execute_async_script("""
        const [method, path, body, done] = arguments;
        fetch('/api/v1/' + path, {method, headers: {Authorization: 'Bearer ' + sessionStorage.getItem('argus.token'),
            'Content-Type': 'application/json'}, body: body === null ? undefined : JSON.stringify(body)})
          .then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));
    """, method, path, body)


class HTMLBox:
    """A box (Python websockets client) whose log lines carry HTML and script; it answers no commands."""

    def __init__(self, hub, device, secret):
        self.hub, self.device, self.secret = hub, device, secret
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.run()), daemon=True)

    async def run(self):
        ws = await connect(self.hub, self.device, self.secret)
        await ws.send(json.dumps({"type": "hello", "id": "h-1", "seq": 1, "ts": now_ms(), "model": "argus-sim-1",
                                  "firmware": "1.0.0", "bootId": "boot-html"}))
        await ws.recv()
        seq = 1
        while not self.stop.is_set():
            seq += 1
            await ws.send(json.dumps({"type": "log", "id": f"l-{seq}", "seq": seq, "ts": now_ms(), "level": "error",
                                      "source": "<b>player</b>", "text": "line " + XSS}))
            deadline = time.time() + 0.5  # two lines a second: far under the rate limit
            while time.time() < deadline:
                try:
                    await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.time()))
                except asyncio.TimeoutError:
                    break
        await ws.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """One hub and FLEET agents (stb-agent), three of model argus-sim-1 and one argus-sim-2."""
    tmp = tmp_path_factory.mktemp("console")
    hub = Hub(tmp, extra_args=["--heartbeat", "1", "--rollout-tick-ms", "200", "--ratings-build-seconds", "1",
                               "--alarm-rule", "uptimeSec>0/0", "--console-dir", str(ROOT / "dashboards" / "console")]).start()
    agents = []
    try:
        for i in range(FLEET):
            model = "argus-sim-2" if i == FLEET - 1 else "argus-sim-1"
            dev = f"con-{i:02d}"
            secret = hub.register(dev, model=model, tags=["lab"] if i < 2 else [])
            agents.append(start_agent(hub, tmp, dev, secret, "--model", model, "--firmware", "1.0.0")[0])
        wait_for(lambda: all(hub.device(f"con-{i:02d}")["online"] for i in range(FLEET)), 30, "the agents online")
        yield hub, tmp
    finally:
        for p in agents:
            stop_agent(p)
        hub.stop()
        hub.drop_database()


@pytest.fixture
def driver():
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()


def issue_message(hub, device, text):
    hub.call("POST", "/api/v1/commands", {"name": "message", "target": {"device": device}, "params": {"text": text}}, expect=201)


def token_for(hub, role):
    _, body, _ = hub.call("POST", "/api/v1/tokens", {"name": f"console-{role}-{int(time.time() * 1000) % 100000}", "role": role}, expect=201)
    return body


def test_console_is_served_with_a_strict_policy(fleet):
    hub, _ = fleet
    for path in ("/console", "/console/js/app.js", "/console/style.css", "/console/vendor/chart.min.js"):
        status, _, headers = hub.call("GET", path, token=False)
        assert status == 200, path
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "object-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp
        assert "unsafe-inline" not in csp
    assert hub.call("GET", "/console/../Package.swift", token=False)[0] == 404
    assert hub.call("GET", "/console/nope.js", token=False)[0] == 404
    # No inline script anywhere in the console's HTML, and nothing is inserted as HTML.
    html = (ROOT / "dashboards/console/index.html").read_text()
    assert "<script>" not in html and "onclick" not in html.lower()
    for js in (ROOT / "dashboards/console").rglob("*.js"):
        src = js.read_text()
        assert "innerHTML" not in src and "insertAdjacentHTML" not in src and "outerHTML" not in src, js


def test_every_page_loads_with_live_data(fleet, driver):
    hub, _ = fleet
    sign_in(driver, hub, hub.token)
    assert text(driver, "#role") == "admin"
    # Fleet: the live stream's online count reaches the agents, and its chart has points.
    wait(driver, lambda d: text(d, "#online-now") == str(FLEET), what="online now = the fleet")
    wait(driver, lambda d: "live" in text(d, "#fleet-live"), what="the fleet stream")
    assert "argus-sim-1" in text(driver, "#by-model") and "argus-sim-2" in text(driver, "#by-model")
    wait(driver, lambda d: text(d, "#ingest-rate") not in ("", "—"), what="an ingest rate")
    wait(driver, lambda d: text(d, "#connects-min") not in ("", "—", "…"), what="connects per minute")
    if os.environ.get("ARGUS_SCREENSHOTS") == "1":
        time.sleep(8)  # a few seconds of the live chart
    screenshot(driver, "fleet")
    screenshot(driver, "fleet-1920", width=1920)

    open_page(driver, hub, "devices")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-device]")) == FLEET, what="the fleet in the list")
    assert f"{FLEET} boxes match" in text(driver, "#match-count")
    # Free search and filters are answered by the server.
    search = driver.find_element(By.ID, "f-q")
    search.send_keys("con-03")
    wait(driver, lambda d: [e.get_attribute("data-device") for e in d.find_elements(By.CSS_SELECTOR, "tr[data-device]")] == ["con-03"], what="search by id")
    search.clear()
    driver.find_element(By.ID, "f-model").send_keys("argus-sim-2")
    driver.find_element(By.ID, "apply-filters").click()
    wait(driver, lambda d: "1 boxes match" in text(d, "#match-count"), what="the model filter")
    driver.find_element(By.ID, "f-model").clear()
    Select(driver.find_element(By.ID, "f-sort")).select_by_value("-id")
    wait(driver, lambda d: (d.find_elements(By.CSS_SELECTOR, "tr[data-device]") or [None])[0].get_attribute("data-device") == f"con-{FLEET - 1:02d}", what="sort by id, descending")
    screenshot(driver, "devices")

    open_page(driver, hub, "device/con-00")
    wait(driver, lambda d: "live" in text(d, "#device-live"), what="the device's live stream")
    wait(driver, lambda d: text(d, "[data-metric=cpu]") not in ("", "—"), what="live health")
    assert text(driver, "[data-field=online]") == "online"
    if os.environ.get("ARGUS_SCREENSHOTS") == "1":
        time.sleep(5)
    screenshot(driver, "device")

    for page, check in (("jobs", "#job-list"), ("firmware", "#firmware-list"), ("alarms", "#alarm-list"), ("ratings", "#ratings-live"),
                        ("audit", "#audit-list"), ("tokens", "#token-list")):
        open_page(driver, hub, page)
        assert driver.find_elements(By.CSS_SELECTOR, check), page
        screenshot(driver, page)
    # The audit page shows what the console did (the live subscriptions).
    open_page(driver, hub, "audit")
    assert "live.subscribe" in text(driver, "#audit-list")
    # The CSV export quotes every cell and defuses what a spreadsheet would run as a formula.
    out = driver.execute_async_script("""
        const done = arguments[0];
        import('/console/js/dom.js').then(m => done(m.csv(['id', 'model'], [['=cmd|calc', 'a"b'], ['@x', 'plain']])));""")
    assert out == '"id","model"\r\n"\'=cmd|calc","a""b"\r\n"\'@x","plain"\r\n'
    # Nothing was refused by the Content-Security-Policy, and no script failed.
    bad = [e["message"] for e in driver.get_log("browser")
           if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    assert bad == []


def test_bulk_reboot_reaches_every_selected_box(fleet, driver):
    hub, _ = fleet
    sign_in(driver, hub, hub.token)
    open_page(driver, hub, "devices")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "input.select-device")) == FLEET, what="the list")
    send = driver.find_element(By.ID, "bulk-send")
    assert not send.is_enabled(), "a bulk action on an empty selection must not be sendable"
    chosen = ["con-00", "con-01", "con-02"]
    for dev in chosen:
        driver.find_element(By.CSS_SELECTOR, f"input.select-device[data-device='{dev}']").click()
    assert "3 selected" in text(driver, "#selection-info")
    Select(driver.find_element(By.ID, "bulk-action")).select_by_value("reboot")
    send.click()
    dialog = wait(driver, lambda d: d.find_element(By.ID, "confirm"), what="the confirmation")
    assert "3 boxes" in dialog.text
    screenshot(driver, "devices-bulk-confirm")
    driver.find_element(By.ID, "confirm-ok").click()
    wait(driver, lambda d: "SUCCEEDED 3" in text(d, "#bulk-progress"), 60, "SUCCEEDED for the three boxes")
    screenshot(driver, "devices-bulk-progress")
    job = driver.find_element(By.CSS_SELECTOR, "#bulk-progress .job-progress").get_attribute("data-job")
    for dev in chosen:
        e = hub.call("GET", f"/api/v1/commands/{job}/executions/{dev}", expect=200)[1]
        assert e["state"] == "SUCCEEDED", e
    assert hub.call("GET", f"/api/v1/commands/{job}/executions/con-03")[0] == 404
    # The jobs page lists it with its progress by state.
    open_page(driver, hub, "jobs")
    wait(driver, lambda d: "SUCCEEDED 3" in text(d, f"#job-list tr[data-job='{job}']"), what="the job on the jobs page")


def test_alarms_are_live_and_acknowledged(fleet, driver):
    hub, _ = fleet
    # The fixture's rule (uptimeSec > 0) raises an alarm for every box as its metrics arrive.
    sign_in(driver, hub, hub.token)
    wait(driver, lambda d: text(d, "#alarms-raised") not in ("", "—", "0"), 60, "raised alarms on the fleet page")
    open_page(driver, hub, "alarms")
    button = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "button.ack"), what="a raised alarm")
    alarm = button.get_attribute("data-alarm")
    button.click()
    wait_for(lambda: any(a["id"] == alarm and a["state"] == "acknowledged" for a in hub.call("GET", "/api/v1/alarms?state=acknowledged", expect=200)[1]["items"]),
             20, "the alarm acknowledged")
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, f"button.ack[data-alarm='{alarm}']"), what="the ack button gone")
    screenshot(driver, "alarms")


def test_rollout_created_from_the_console_runs_its_first_wave(fleet, driver):
    hub, tmp = fleet
    image = tmp / "fw-2.0.0.bin"
    image.write_bytes(os.urandom(64 * 1024))
    sign_in(driver, hub, hub.token)
    open_page(driver, hub, "firmware")
    driver.find_element(By.ID, "fw-version").send_keys("2.0.0")
    driver.find_element(By.ID, "fw-models").send_keys("argus-sim-1")
    driver.find_element(By.ID, "fw-file").send_keys(str(image))
    wait(driver, lambda d: len(d.find_element(By.ID, "fw-sha256").get_attribute("value")) == 64, what="the checksum computed in the page")
    driver.find_element(By.ID, "fw-upload").click()
    wait(driver, lambda d: "uploaded and verified" in text(d, "#fw-status"), 60, "the upload")
    assert hub.call("GET", "/api/v1/firmware/2.0.0", expect=200)[1]["uploaded"] is True
    # A bad value shows the API's error next to its field, and nothing is created.
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#ro-firmware option[value='2.0.0']"), what="the catalogue in the form")
    Select(driver.find_element(By.ID, "ro-firmware")).select_by_value("2.0.0")
    model = driver.find_element(By.ID, "ro-model")
    model.send_keys("argus-sim-1")
    wait(driver, lambda d: text(d, "#ro-match-count") == "3", what="the live count of matching boxes")
    waves = driver.find_element(By.ID, "ro-waves")
    waves.clear()
    waves.send_keys("50,10")
    driver.find_element(By.ID, "ro-create").click()
    driver.find_element(By.ID, "confirm-ok").click()
    wait(driver, lambda d: text(d, "#rollout-form .field-error[data-error-for='waves']") != "" or text(d, "#rollout-form .field-error[data-error-for='']") != "", what="the waves error")
    assert hub.call("GET", "/api/v1/rollouts", expect=200)[1]["items"] == []
    waves.clear()
    waves.send_keys("34,100")
    driver.find_element(By.ID, "ro-create").click()
    assert "3 boxes" in driver.find_element(By.ID, "confirm").text
    driver.find_element(By.ID, "confirm-ok").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#rollout-list tr[data-rollout]"), what="the rollout listed")
    ro = hub.call("GET", "/api/v1/rollouts", expect=200)[1]["items"][0]
    wait_for(lambda: (lambda r: r["waves"][0]["succeeded"] >= r["waves"][0]["target"] > 0)(hub.call("GET", f"/api/v1/rollouts/{ro['id']}", expect=200)[1]),
             90, "the first wave to succeed")
    wait(driver, lambda d: "1 ok" in text(d, f"#rollout-list [data-wave='0']") or "2 ok" in text(d, "#rollout-list [data-wave='0']"), 30, "wave 1 progress on the page")
    screenshot(driver, "firmware-rollouts")
    # Pause from the console.
    driver.find_element(By.CSS_SELECTOR, f"button.rollout-pause[data-rollout='{ro['id']}']").click()
    driver.find_element(By.ID, "confirm-ok").click()
    wait_for(lambda: hub.call("GET", f"/api/v1/rollouts/{ro['id']}")[1]["state"] in ("paused", "completed"), 20, "paused")


def test_live_log_tail_shows_lines_from_the_box(fleet, driver):
    hub, _ = fleet
    sign_in(driver, hub, hub.token)
    open_page(driver, hub, "device/con-03")
    wait(driver, lambda d: "live" in text(d, "#device-live"), what="the live stream")
    driver.find_element(By.ID, "tail-start").click()
    wait(driver, lambda d: "live tail" in text(d, "#tail-lines"), what="the tail started")
    # The box logs a line for each command it receives (and its viewing logs more): give it some.
    for i in range(2):
        issue_message(hub, "con-03", f"tail check {i}")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tail-lines .tail-line")) >= 2, 60, "tail lines from the box")
    assert any("agent" in e.text or "player" in e.text or "system" in e.text for e in driver.find_elements(By.CSS_SELECTOR, "#tail-lines .tail-line"))
    screenshot(driver, "device-log-tail")
    driver.find_element(By.ID, "tail-stop").click()
    wait(driver, lambda d: d.find_elements(By.ID, "tail-stopped"), what="the tail stopped")


def test_support_token_sees_no_rollout_controls_and_is_refused(fleet, driver):
    hub, _ = fleet
    t = token_for(hub, "support")
    sign_in(driver, hub, t["token"])
    assert text(driver, "#role") == "support"
    nav = [a.get_attribute("data-page") for a in driver.find_elements(By.CSS_SELECTOR, "#nav a")]
    assert "firmware" not in nav and "tokens" not in nav and "audit" not in nav and "devices" in nav
    driver.get(hub.api + "/console#/firmware")
    driver.refresh()
    wait(driver, lambda d: d.find_element(By.ID, "view").get_attribute("data-page") == "fleet", what="firmware refused: back to the fleet")
    assert not driver.find_elements(By.CSS_SELECTOR, "#rollout-form, button.rollout-pause, button.rollout-abort")
    open_page(driver, hub, "devices")
    actions = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#bulk-action option")]
    assert "reboot" in actions and "firmware_update" not in actions and "factory_reset" not in actions
    status, body = fetch(driver, "POST", "rollouts", {"firmware": "2.0.0", "target": {"all": True}})
    assert status == 403, body
    assert fetch(driver, "POST", "rollouts/r1/pause", {})[0] == 403
    assert fetch(driver, "GET", "rollouts")[0] == 403


def test_html_from_a_box_is_shown_as_text(fleet, driver):
    hub, _ = fleet
    secret = hub.register("con-html", model="argus-sim-1")
    with HTMLBox(hub, "con-html", secret):
        hub.wait_device("con-html", lambda d: d["online"])
        # The protocol refuses such a model from a box; the store may still hold one (an older
        # hub, a hand edit). The console must show it as text all the same.
        db_of(hub).devices.update_one({"_id": "con-html"}, {"$set": {"model": "<b>m</b>" + XSS, "firmware": XSS}})
        sign_in(driver, hub, hub.token)
        open_page(driver, hub, "devices")
        row = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "tr[data-device='con-html']"), what="the box listed")
        assert "<script>" in row.text and "<b>m</b>" in row.text
        open_page(driver, hub, "device/con-html")
        assert "<script>" in text(driver, "[data-field=model]")
        wait(driver, lambda d: "<script>window.__xss=2</script>" in text(d, "#device-logs"), 30, "the log lines as text")
        assert "<b>player</b>" in text(driver, "#device-logs")
        screenshot(driver, "device-html-as-text")
        assert not driver.find_elements(By.CSS_SELECTOR, "#view img, #view script, #view b")
        assert driver.execute_script("return window.__xss === undefined")


async def send_viewing(hub, device, secret, events):
    """Yesterday's viewing of one box (hub-synchronised clock), in one batch, acknowledged."""
    ws = await connect(hub, device, secret)
    try:
        await ws.send(json.dumps({"type": "hello", "id": "h", "ts": now_ms(), "model": "argus-sim-1", "firmware": "1.0.0", "bootId": "b-" + device}))
        await asyncio.wait_for(ws.recv(), 10)
        msgs = [{"type": "event", "seq": i + 2, "ts": at, "event": ev, **({"channel": ch} if ch else {})} for i, (at, ev, ch) in enumerate(events)]
        await ws.send(json.dumps({"type": "batch", "id": "b1", "messages": msgs}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if m.get("type") == "ack" and m.get("upTo", 0) >= len(events) + 1:
                return
    finally:
        await ws.close()


def test_ratings_page_shows_the_fleets_viewing(fleet, driver):
    hub, _ = fleet
    day = 86_400_000
    start = (now_ms() // day - 1) * day + 10 * 3_600_000  # yesterday 10:00 UTC
    for i in range(6):  # k = 5: fewer boxes would be suppressed
        dev = f"rv-{i}"
        secret = hub.register(dev)
        channel = "news" if i < 4 else "sport"
        asyncio.run(send_viewing(hub, dev, secret, [(start, "tune", channel), (start + 7_200_000, "leave", None)]))
    sign_in(driver, hub, hub.token)
    open_page(driver, hub, "ratings")
    Select(driver.find_element(By.ID, "r-range")).select_by_value("168")
    def shown(d):
        d.find_element(By.CSS_SELECTOR, "#ratings-filters button[type=submit]").click()
        time.sleep(1)
        return "news" in text(d, "#ratings-table") and "sport" in text(d, "#ratings-table")
    wait(driver, shown, 90, "yesterday's viewing in the ratings table")
    screenshot(driver, "ratings")
    # A bad segment shows the API's error next to the field.
    driver.find_element(By.ID, "r-segment").send_keys("colour:red")
    driver.find_element(By.CSS_SELECTOR, "#ratings-filters button[type=submit]").click()
    wait(driver, lambda d: "segment" in text(d, "#ratings-filters .field-error[data-error-for='segment']"), what="the segment error")


def test_bad_input_revoked_token_and_invalid_form(fleet, driver):
    hub, _ = fleet
    # An invalid token name: the API's error next to the field, nothing created.
    sign_in(driver, hub, hub.token)
    open_page(driver, hub, "tokens")
    before = len(hub.call("GET", "/api/v1/tokens", expect=200)[1]["items"])
    driver.find_element(By.ID, "token-new-name").send_keys("bad name!")
    driver.find_element(By.ID, "token-create").click()
    wait(driver, lambda d: "name must be" in text(d, "#token-form .field-error[data-error-for='name']"), what="the name error next to the field")
    assert len(hub.call("GET", "/api/v1/tokens", expect=200)[1]["items"]) == before
    # A token revoked while signed in: back to sign-in with a message.
    t = token_for(hub, "operator")
    sign_in(driver, hub, t["token"])
    hub.call("DELETE", f"/api/v1/tokens/{t['id']}", expect=204)
    driver.find_element(By.CSS_SELECTOR, "#nav a[data-page='devices']").click()
    wait(driver, lambda d: d.find_elements(By.ID, "signin") and "revoked" in text(d, "#signin-error"), what="sign-in with a message")
    screenshot(driver, "signin-revoked")
    assert driver.execute_script("return sessionStorage.getItem('argus.token')") is None


def test_live_view_reconnects_after_a_hub_restart(make_hub, driver):
    hub = make_hub(extra_args=["--heartbeat", "1", "--console-dir", str(ROOT / "dashboards" / "console")]).start()
    sign_in(driver, hub, hub.token)
    wait(driver, lambda d: "live" in text(d, "#fleet-live"), what="the fleet stream")
    hub.stop()
    wait(driver, lambda d: "reconnecting" in text(d, "#banner") or "connection lost" in text(d, "#banner"), 30, "the banner saying the live view dropped")
    assert "connection lost" in text(driver, "#fleet-live") or "reconnecting" in text(driver, "#fleet-live")
    hub.start()
    wait(driver, lambda d: text(d, "#fleet-live") == "fleet stream: live", 60, "the live view back")
    assert not driver.find_element(By.ID, "banner").is_displayed()
