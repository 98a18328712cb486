"""Loads console pages in headless Chromium and prints first paint and data-ready times.

usage: console_bench.py API_URL TOKEN RUNS   (scripts/bench/console runs it)
"""
import shutil
import statistics
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

api, token, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = webdriver.ChromeOptions()
opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
try:
    driver.get(api + "/console")
    driver.execute_script("sessionStorage.setItem('argus.token', arguments[0])", token)
    for page in ("fleet", "devices"):
        paints, readies = [], []
        for i in range(runs + 1):  # the first load warms the browser's and the hub's caches
            driver.get("about:blank")
            driver.get(f"{api}/console#/{page}")
            WebDriverWait(driver, 30, 0.02).until(
                lambda d: d.execute_script("return document.getElementById('view').dataset.state") == "ready")
            fcp, ready = driver.execute_script("""
                const p = performance.getEntriesByName('first-contentful-paint')[0];
                const r = performance.getEntriesByName('argus-data-ready')[0];
                return [p ? p.startTime : null, r ? r.startTime : null];""")
            if i > 0:
                paints.append(fcp)
                readies.append(ready)
            else:
                cold = (fcp, ready)
        print(f"{page:8s} first paint: median {statistics.median(paints):6.0f} ms, worst {max(paints):6.0f} ms;"
              f"  data ready: median {statistics.median(readies):6.0f} ms, worst {max(readies):6.0f} ms  ({runs} loads;"
              f" the first load before them: {cold[0]:.0f} / {cold[1]:.0f} ms)")
    # What the pages ask the API, timed alone (ms): the summary fresh is what maxAgeSec saves.
    def timed(path):
        req = urllib.request.Request(api + "/api/v1/" + path, headers={"Authorization": "Bearer " + token})
        t = time.perf_counter()
        urllib.request.urlopen(req, timeout=60).read()
        return (time.perf_counter() - t) * 1000
    for path in ("fleet/summary", "fleet/summary?maxAgeSec=60", "devices?sort=id&offset=0&limit=50", "devices?sort=-lastSeen&offset=0&limit=50",
                 "devices:count", "devices?q=con-0001&sort=id&limit=50"):
        ts = [timed(path) for _ in range(3)]
        print(f"  API {path:45s} median {statistics.median(ts):6.0f} ms")
finally:
    driver.quit()
