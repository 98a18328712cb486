"""Driver of scripts/bench/ratings (docs/benchmarks.md, "Ratings queries").

Generates D days × B boxes × C channels of synthetic viewing into the store (RatingsBenchGen),
starts a release hub on that database, times each ratings query kind over HTTP (first call, then
p50 / p95 over repetitions), computes the same answers with DuckDB over per-box minute credit
(ratings_peer.py), checks they agree, and reports hub / DuckDB per kind. Then one more day goes
through the hub's real build from raw tune events, timed, and checked the same way.
"""
from __future__ import annotations

import argparse
import datetime
import http.client
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymongo

from ratings_peer import Peer, Question, compare

DAY_MS = 86_400_000


def iso(minute: int) -> str:
    return datetime.datetime.fromtimestamp(minute * 60, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def with_db(uri: str, db: str) -> str:
    head, _, query = uri.partition("?")
    head = re.sub(r"^(mongodb://[^/]+)(/.*)?$", r"\1", head)
    return f"{head}/{db}?{query}"


class Hub:
    def __init__(self, binary: Path, uri: str, work: Path):
        self.api_port, self.device_port = free_port(), free_port()
        self.token_file = work / "hub-token"
        self.log = open(work / "hub.log", "ab")
        self.args = [str(binary), "--api-port", str(self.api_port), "--device-port", str(self.device_port), "--mongodb-uri", uri,
                     "--token-file", str(self.token_file), "--spool-dir", str(work / "spool"), "--ratings-build-seconds", "1",
                     "--rating-segments", "model", "--log-level", "info"]
        self.proc = None
        self.conn = None
        self.token = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"hub exited with {self.proc.returncode}; see hub.log")
            try:
                status, _ = self.get("/healthz", auth=False)
                if status == 200 and self.token_file.exists():
                    break
            except OSError:
                self.conn = None
            time.sleep(0.2)
        else:
            raise SystemExit("hub not ready in 60 s")
        self.token = self.token_file.read_text().strip()
        status, body = self.request("POST", "/api/v1/tokens", {"name": "bench-analyst", "role": "analyst"})
        assert status == 201, (status, body)
        self.token = json.loads(body)["token"]  # from here on, an analyst

    def request(self, method, path, body=None, auth=True):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=600)
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        data = json.dumps(body).encode() if body is not None else None
        if data:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The hub closed a keep-alive connection left idle (while DuckDB ran): once more, fresh.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=600)
                if attempt == 2:
                    raise
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                raise
        raise AssertionError("unreachable")

    def get(self, path, auth=True):
        return self.request("GET", path, auth=auth)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def questions(first_day: int, end_day: int, days: int) -> list[Question]:
    d0, d1 = first_day * 1440, end_day * 1440
    week = max(first_day, end_day - 7) * 1440
    peak = ref_daypart("peak")
    qs = [
        Question("top-10 channels, 30 d", d0, d1, top=10, query={"top": "10"}),
        Question("1 channel hourly, 7 d", week, d1, bucket=60, channels=["ch001"], query={"bucket": "hour", "channels": "ch001"}),
        Question("daypart peak, 30 d", d0, d1, daypart_hours=peak, query={"daypart": "peak"}),
        Question("segment model:m-a, 30 d", d0, d1, model="m-a", query={"segment": "model:m-a"}),
        Question("15-min buckets, 1 d", d1 - 1440, d1, bucket=15, query={"bucket": "15min"}),
    ]
    if days < 30:
        for q in qs:
            q.kind = q.kind.replace("30 d", f"{days} d").replace("7 d", f"{min(7, days)} d")
    return qs


def ref_daypart(name: str) -> list[int]:
    from ratings_peer import ref
    return ref.parse_dayparts(ref.DEFAULT_DAYPARTS)[name]


def path_of(q: Question) -> str:
    params = {"from": iso(q.from_min), "to": iso(q.to_min), **q.query}
    return "/api/v1/ratings?" + "&".join(f"{k}={v}" for k, v in params.items())


def timed(fn, reps: int, budget_s: float):
    """(first result, first seconds, [later seconds]): at least 3 repetitions, at most `reps`, within `budget_s`."""
    t0 = time.perf_counter()
    first = fn()
    first_s = time.perf_counter() - t0
    later = []
    start = time.perf_counter()
    while len(later) < reps and (len(later) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        later.append(time.perf_counter() - t)
    return first, first_s, later


def pctl(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))] if xs else float("nan")


def bench_kinds(hub: Hub, peer: Peer, qs: list[Question], reps: int, budget: float, prefix: str = "") -> list[dict]:
    results = []
    for q in qs:
        path = path_of(q)
        if hub.conn is not None:  # a fresh connection per kind: the previous one idled while DuckDB ran
            hub.conn.close()
            hub.conn = None

        def hub_call():
            status, body = hub.get(path)
            if status != 200:
                raise SystemExit(f"{path} -> {status} {body[:300]!r}")
            return body

        body, h_first, h_later = timed(hub_call, reps, budget)
        answer = json.loads(body)
        (p_answer, _), p_first, p_later = timed(lambda: peer.answer(q, prefix), reps, budget)
        bad = compare(answer, p_answer)
        channels = sum(len(r["channels"]) for r in answer["series"])
        r = {"kind": q.kind, "path": path, "rows": len(answer["series"]), "channelRows": channels,
             "universe": answer["universe"]["size"], "measures": answer["measures"], "bytes": len(body),
             "hub": {"first_ms": h_first * 1e3, "p50_ms": pctl(h_later, 50) * 1e3, "p95_ms": pctl(h_later, 95) * 1e3, "n": len(h_later)},
             "duckdb": {"first_ms": p_first * 1e3, "p50_ms": pctl(p_later, 50) * 1e3, "p95_ms": pctl(p_later, 95) * 1e3, "n": len(p_later)},
             "mismatches": bad}
        r["ratio_p50"] = r["hub"]["p50_ms"] / r["duckdb"]["p50_ms"]
        results.append(r)
        print(f"  {q.kind}: hub first {h_first * 1e3:.0f} ms, p50 {r['hub']['p50_ms']:.0f} ms, p95 {r['hub']['p95_ms']:.0f} ms "
              f"(n={len(h_later)}); duckdb p50 {r['duckdb']['p50_ms']:.0f} ms; {'agree' if not bad else f'{len(bad)} MISMATCHES'}",
              flush=True)
        for b in bad:
            print("    mismatch:", b, flush=True)
    return results


def table(results: list[dict]) -> str:
    lines = ["| query | rows × channels | hub first | hub p50 | hub p95 | DuckDB first | DuckDB p50 | DuckDB p95 | hub / DuckDB (p50) | answers |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        h, d = r["hub"], r["duckdb"]
        agree = "equal" if not r["mismatches"] else f"**{len(r['mismatches'])} mismatches**"
        lines.append(f"| {r['kind']} | {r['rows']} × {round(r['channelRows'] / max(1, r['rows']))} | {h['first_ms']:,.0f} ms | {h['p50_ms']:,.0f} ms | "
                     f"{h['p95_ms']:,.0f} ms | {d['first_ms']:,.0f} ms | {d['p50_ms']:,.0f} ms | {d['p95_ms']:,.0f} ms | "
                     f"{r['ratio_p50']:.1f}× | {agree} |")
    return "\n".join(lines)


def metric(hub: Hub, name: str) -> float | None:
    status, body = hub.get("/metrics", auth=False)
    if status != 200:
        return None
    total = None
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def raw_day(args, hub: Hub, peer: Peer, db, bin_dir: Path, work: Path, day: int) -> dict:
    """One day through the hub's real build: raw tune events into `events`, the builder's lease
    held by the bench while they go in, then released; timed until the day's document appears."""
    out = work / "raw"
    subprocess.run([str(bin_dir / "RatingsBenchGen"), "--sessions-only", "--out", str(out), "--days", "1", "--end-day", str(day + 1),
                    "--boxes", str(args.raw_boxes), "--channels", str(args.channels), "--seed", str(args.seed + 1)],
                   check=True, stdout=subprocess.DEVNULL)
    docs = []
    seq: dict[int, int] = {}
    for line in (out / f"sessions-{day}.csv").read_text().splitlines()[1:]:
        box, ch, ts, start, end = map(int, line.split(","))
        dev, boot = f"bench-{box:06d}", f"boot-{day}"
        for kind, at in (("tune", start), ("leave" if seq.get(box, 0) % 4 else "standby_on", end)):
            s = seq[box] = seq.get(box, 0) + 1
            when = datetime.datetime.fromtimestamp(at / 1000, datetime.UTC)
            d = {"_id": f"{dev}|{boot}|{s}", "d": dev, "b": boot, "s": s, "t": when, "r": when, "e": kind, "o": 0}
            if kind == "tune":
                d["ch"] = f"ch{ch:03d}"
                if ts:
                    d["mode"] = "timeshift"
            docs.append(d)
    far = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
    db.ratings_state.update_one({"_id": "builder"}, {"$set": {"node": "bench-holds-the-lease", "until": far}}, upsert=True)
    time.sleep(2)  # a build that had the lease finishes its period
    sum0 = metric(hub, "argus_ratings_day_build_seconds_sum") or 0.0
    cnt0 = metric(hub, "argus_ratings_day_build_seconds_count") or 0.0
    t0 = time.perf_counter()
    for k in range(0, len(docs), 1000):
        db.events.insert_many(docs[k:k + 1000], ordered=False)
    insert_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    db.ratings_state.update_one({"_id": "builder"}, {"$set": {"until": datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)}})
    deadline = time.time() + 1800
    while time.time() < deadline:
        d = db.ratings_days.find_one({"_id": day}, {"events": 1})
        if d and d.get("events") == len(docs):
            break
        time.sleep(0.2)
    else:
        raise SystemExit("the raw day was not built within 30 minutes")
    build_s = time.perf_counter() - t1
    time.sleep(2)  # the same period also builds the next day; let the metrics settle
    sums = (metric(hub, "argus_ratings_day_build_seconds_sum") or 0.0) - sum0
    cnts = (metric(hub, "argus_ratings_day_build_seconds_count") or 0.0) - cnt0
    stats = peer.load(out, prefix="raw_")
    print(f"  raw day {day}: {args.raw_boxes} boxes, {stats['sessions']} sessions, {len(docs)} events inserted in {insert_s:.1f} s; "
          f"day document {build_s:.1f} s after the insert ended; builder metrics: {cnts:.0f} builds, {sums:.2f} s", flush=True)
    d0 = day * 1440
    qs = [Question("raw day: top-10, 1 d", d0, d0 + 1440, top=10, query={"top": "10"}),
          Question("raw day: 15-min buckets, 1 d", d0, d0 + 1440, bucket=15, query={"bucket": "15min"})]
    results = bench_kinds(hub, peer, qs, min(args.reps, 10), args.budget, prefix="raw_")
    return {"day": day, "boxes": args.raw_boxes, "sessions": stats["sessions"], "events": len(docs), "insert_s": insert_s,
            "build_s": build_s, "builder_builds": cnts, "builder_seconds": sums, "queries": results}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True, help="MongoDB URI of the store (no database)")
    ap.add_argument("--database", default="ratings_bench")
    ap.add_argument("--bin", required=True, help="directory of release argus-hub and RatingsBenchGen")
    ap.add_argument("--work", required=True)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--boxes", type=int, default=100_000)
    ap.add_argument("--channels", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--raw-boxes", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--budget", type=float, default=120, help="seconds of repetitions per query kind and side, at least 3")
    ap.add_argument("--skip-raw", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="time the data a kept run left in --work and the store (its report.json and gen/), without generating; "
                         "implies --skip-raw, and waits --settle s for the restarted builder's first pass")
    ap.add_argument("--settle", type=float, default=90)
    args = ap.parse_args()
    work, bin_dir = Path(args.work), Path(args.bin)
    work.mkdir(parents=True, exist_ok=True)
    uri = with_db(args.uri, args.database)
    client = pymongo.MongoClient(uri)
    db = client.get_default_database()
    previous = json.loads((work / "report.json").read_text()) if args.reuse else None
    if previous is None:
        client.drop_database(args.database)
    else:
        args.skip_raw = True
        (work / "report-previous.json").write_text(json.dumps(previous, indent=1, default=str))
    today = int(time.time() * 1000) // DAY_MS
    end_day = today - 1  # generated days end the day before yesterday; yesterday is the raw day
    report: dict = {"days": args.days, "boxes": args.boxes, "channels": args.channels, "seed": args.seed, "started": time.time()}

    if previous is not None:
        summary = previous["generator"]
        report.update({k: previous[k] for k in ("days", "boxes", "channels", "seed")})
        report["generator"] = summary
        report["reused"] = {"from": str(work / "report-previous.json"), "generated_at": previous.get("started")}
        print(f"== reusing {summary['days']} days × {summary['boxes']:,} boxes × {summary['channels']} channels in {args.database}, "
              f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(previous.get('started', 0)))}", flush=True)
    else:
        generate(args, uri, bin_dir, work, end_day, report)
        summary = report["generator"]
    print("== DuckDB: loading per-box sessions and expanding them to minute credit", flush=True)
    peer = Peer()
    report["duckdb_load"] = peer.load(work / "gen")
    print(f"  {report['duckdb_load']}", flush=True)

    hub = Hub(bin_dir / "argus-hub", uri, work)
    try:
        hub.start()
        if previous is not None:
            # The restarted builder's first pass rebuilds the days its rescan window touches.
            time.sleep(args.settle)
        print(f"== queries (hub on :{hub.api_port}; {args.reps} repetitions or {args.budget:.0f} s per kind and side)", flush=True)
        qs = questions(summary["firstDay"], summary["endDay"], summary["days"])
        report["queries"] = bench_kinds(hub, peer, qs, args.reps, args.budget)
        tiny = Question("tiny", qs[0].from_min, qs[0].to_min, model="m-tiny", query={"segment": "model:m-tiny"})
        status, body = hub.get(path_of(tiny))
        t = json.loads(body)
        report["tiny_segment"] = {"universe": t["universe"]["size"],
                                  "all_suppressed": all(c.get("suppressed") for r in t["series"] for c in r["channels"])}
        print(f"  segment model:m-tiny: universe {t['universe']['size']}, every cell suppressed: {report['tiny_segment']['all_suppressed']}")
        if not args.skip_raw:
            print(f"== one day through the real build from raw events ({args.raw_boxes:,} boxes)", flush=True)
            report["raw"] = raw_day(args, hub, peer, db, bin_dir, work, end_day)
    finally:
        hub.stop()
    report["wall_s"] = time.time() - report["started"]
    print()
    print(table(report["queries"] + (report["raw"]["queries"] if "raw" in report else [])))
    (work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"\nreport: {work / 'report.json'}; total {report['wall_s']:.0f} s")
    if any(r["mismatches"] for r in report["queries"] + report.get("raw", {}).get("queries", [])):
        sys.exit(1)


def generate(args, uri: str, bin_dir: Path, work: Path, end_day: int, report: dict) -> None:
    print(f"== generating {args.days} days × {args.boxes:,} boxes × {args.channels} channels into {args.database}", flush=True)
    t0 = time.perf_counter()
    gen = subprocess.Popen([str(bin_dir / "RatingsBenchGen"), "--mongodb-uri", uri, "--database", args.database, "--out", str(work / "gen"),
                            "--days", str(args.days), "--boxes", str(args.boxes), "--channels", str(args.channels),
                            "--seed", str(args.seed), "--end-day", str(end_day)], stdout=subprocess.PIPE, text=True)
    summary = None
    for line in gen.stdout:
        if line.startswith("RESULT "):
            summary = json.loads(line[7:])
        else:
            print("  " + line.rstrip(), flush=True)
    if gen.wait() != 0 or summary is None:
        raise SystemExit("the generator failed")
    summary["wall_s"] = time.perf_counter() - t0
    report["generator"] = summary
    print(f"  generated in {summary['genSeconds']:.1f} s, stored in {summary['storeSeconds']:.1f} s "
          f"({summary['sessions']:,} sessions, {summary['credits']:,} credited minutes, {summary['cells']:,} cell documents)", flush=True)


if __name__ == "__main__":
    main()
