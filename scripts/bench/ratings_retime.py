"""Re-times the hub side of scripts/bench/ratings on the data a run kept (KEEP=1): start a store on
its kept directory, then `.venv/bin/python scripts/bench/ratings_retime.py WORK MONGODB_URI BIN/argus-hub`
(docs/benchmarks.md, "Ratings queries")."""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, "scripts/bench")
import ratings_bench as rb
work, uri, binary = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
rep = json.loads((work / "report.json").read_text())
g = rep["generator"]
qs = rb.questions(g["firstDay"], g["endDay"], g["days"])
hub = rb.Hub(binary, rb.with_db(uri, "ratings_bench"), work)
hub.start()
try:
    # A restarted builder's first pass rebuilds the days its rescan window touches (the kept raw
    # day): let it finish before timing, as in the bench run (SETTLE seconds, default 90).
    time.sleep(float(os.environ.get("SETTLE", "90")))
    for q in qs:
        path = rb.path_of(q)
        _, first_s, later = rb.timed(lambda: hub.get(path), 20, 40)
        status, body = hub.get(path)
        assert status == 200, body[:200]
        print(f"{q.kind}: first {first_s*1000:.0f} ms, p50 {rb.pctl(later,50)*1000:.0f} ms, p95 {rb.pctl(later,95)*1000:.0f} ms (n={len(later)})")
finally:
    hub.stop()
