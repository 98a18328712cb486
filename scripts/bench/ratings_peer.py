"""The peer of scripts/bench/ratings: DuckDB over per-box minute credit.

Loads the generator's per-box session rows (sessions-<day>.csv: box,ch,ts,start_ms,end_ms and
boxes.csv: box,device,model), expands them to per-box minute credit, and answers the hub's
ratings questions (AMR, rating %, share %, reach, reach3, ATV, Wilson intervals) from it.

The generator leaves at least 61 s between one box's sessions, so no clock minute is touched by
two sessions, and BARB's rule (docs/ratings-method.md, "Minute credit") reduces to: a session
gets the minutes it covers for at least 30 s.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "e2e"))
import ratings_ref as ref  # noqa: E402  (Wilson, dayparts: the e2e's independent implementation)

MINUTE_MS = 60_000
DAY_MIN = 1440


@dataclass
class Question:
    """One ratings question, as the hub's query string and as the peer's selections."""
    kind: str
    from_min: int
    to_min: int
    bucket: int | None = None  # minutes
    daypart_hours: list[int] | None = None
    model: str | None = None
    channels: list[str] | None = None
    top: int | None = None
    query: dict = field(default_factory=dict)

    @property
    def wants_reach(self) -> bool:
        return self.bucket is None or self.bucket >= 60

    def rows(self) -> list[tuple[int, int, list[tuple[int, int]]]]:
        """(row from, row to, minute ranges of its selection), as RatingsQuery.selections."""
        step = self.bucket or (self.to_min - self.from_min)
        start = (self.from_min // self.bucket * self.bucket) if self.bucket else self.from_min
        out = []
        while start < self.to_min:
            lo, hi = max(start, self.from_min), min(start + step, self.to_min)
            if self.daypart_hours is None:
                ranges = [(lo, hi)]
            else:
                hours = set(self.daypart_hours)
                ranges = [(h, min(h + 60, hi)) for h in range(lo - lo % 60, hi, 60) if (h // 60) % 24 in hours]
                ranges = [(max(a, lo), b) for a, b in ranges if b > max(a, lo)]
            out.append((lo, hi, ranges))
            start += step
        return out


def channel_name(i: int) -> str:
    return f"ch{i:03d}"


class Peer:
    def __init__(self, threads: int | None = None):
        self.db = duckdb.connect()
        if threads:
            self.db.execute(f"SET threads = {threads}")

    def load(self, data_dir: Path, prefix: str = "") -> dict:
        """Loads one generator output into tables <prefix>sessions, boxes, credit, active; returns timings."""
        t0 = time.perf_counter()
        p = prefix
        self.db.execute(f"""CREATE OR REPLACE TABLE {p}sessions AS SELECT * FROM read_csv('{data_dir}/sessions-*.csv', header = true,
            columns = {{'box': 'INTEGER', 'ch': 'SMALLINT', 'ts': 'TINYINT', 'start_ms': 'BIGINT', 'end_ms': 'BIGINT'}})""")
        self.db.execute(f"""CREATE OR REPLACE TABLE {p}boxes AS SELECT * FROM read_csv('{data_dir}/boxes.csv', header = true,
            columns = {{'box': 'INTEGER', 'device': 'VARCHAR', 'model': 'VARCHAR'}})""")
        t1 = time.perf_counter()
        # Per-box minute credit: each minute a session covers for at least 30 s.
        self.db.execute(f"""CREATE OR REPLACE TABLE {p}credit AS
            SELECT box, ch, ts, m AS minute FROM (
                SELECT box, ch, ts, start_ms, end_ms, unnest(range(start_ms // {MINUTE_MS}, (end_ms - 1) // {MINUTE_MS} + 1)) AS m
                FROM {p}sessions)
            WHERE least(end_ms, (m + 1) * {MINUTE_MS}) - greatest(start_ms, m * {MINUTE_MS}) >= 30000
            ORDER BY minute""")
        self.db.execute(f"CREATE OR REPLACE TABLE {p}active AS SELECT DISTINCT box, start_ms // 86400000 AS day FROM {p}sessions")
        t2 = time.perf_counter()
        sessions = self.db.execute(f"SELECT count(*) FROM {p}sessions").fetchone()[0]
        credits = self.db.execute(f"SELECT count(*) FROM {p}credit").fetchone()[0]
        return {"sessions": sessions, "credits": credits, "load_s": t1 - t0, "expand_s": t2 - t1}

    def sql(self, q: Question, prefix: str = "") -> tuple[list[str], list]:
        """The statements answering `q`: the selection table, then one query of per-(row, channel) tallies."""
        p = prefix
        values = ", ".join(f"({i}, {a}, {b})" for i, (_, _, ranges) in enumerate(q.rows()) for a, b in ranges)
        setup = [
            "CREATE OR REPLACE TEMP TABLE selr AS SELECT * FROM (VALUES " + values + ") t(row, lo, hi)",
            "CREATE OR REPLACE TEMP TABLE selm AS SELECT row, unnest(range(lo, hi)) AS minute FROM selr",
        ]
        seg = f"JOIN {p}boxes b ON b.box = c.box AND b.model = '{q.model}'" if q.model else ""
        reach = ""
        if q.wants_reach:
            reach = """,
            isl AS (SELECT row, ch, box, minute - row_number() OVER (PARTITION BY row, ch, box ORDER BY minute) AS g FROM c),
            r3 AS (SELECT row, ch, count(DISTINCT box) AS reach3 FROM
                    (SELECT row, ch, box FROM isl GROUP BY row, ch, box, g HAVING count(*) >= 3) GROUP BY row, ch),
            r1 AS (SELECT row, ch, count(DISTINCT box) AS reach1 FROM c GROUP BY row, ch)"""
        cols = "bm.row, bm.ch, bm.box_minutes, tot.total" + (", r1.reach1, coalesce(r3.reach3, 0)" if q.wants_reach else "")
        joins = " JOIN r1 USING (row, ch) LEFT JOIN r3 USING (row, ch)" if q.wants_reach else ""
        main = f"""WITH c AS (SELECT s.row, c.box, c.ch, c.minute FROM {p}credit c JOIN selm s USING (minute) {seg}),
            bm AS (SELECT row, ch, count(*) AS box_minutes FROM c GROUP BY row, ch),
            tot AS (SELECT row, sum(box_minutes) AS total FROM bm GROUP BY row){reach}
            SELECT {cols} FROM bm JOIN tot USING (row){joins}"""
        useg = f"JOIN {p}boxes b ON b.box = a.box AND b.model = '{q.model}'" if q.model else ""
        first, last = q.from_min // DAY_MIN, (q.to_min - 1) // DAY_MIN
        universe = f"SELECT count(DISTINCT a.box) FROM {p}active a {useg} WHERE a.day BETWEEN {first} AND {last}"
        return setup, [main, universe]

    def answer(self, q: Question, prefix: str = "") -> tuple[dict, float]:
        """(answer rows like the hub's, seconds the SQL took)."""
        setup, (main, universe_sql) = self.sql(q, prefix)
        t0 = time.perf_counter()
        for s in setup:
            self.db.execute(s)
        tallies = self.db.execute(main).fetchall()
        universe = self.db.execute(universe_sql).fetchone()[0]
        elapsed = time.perf_counter() - t0
        return self.shape(q, tallies, universe), elapsed

    @staticmethod
    def shape(q: Question, tallies, universe: int) -> dict:
        rows = q.rows()
        by_row: dict[int, list] = {i: [] for i in range(len(rows))}
        for t in tallies:
            by_row[t[0]].append(t)
        out = []
        z = ref.Params.z
        for i, (lo, hi, ranges) in enumerate(rows):
            minutes = sum(b - a for a, b in ranges)
            chans = []
            for t in by_row[i]:
                ch = channel_name(t[1])
                if q.channels is not None and ch not in q.channels:
                    continue
                bm, total = int(t[2]), int(t[3])
                amr = bm / minutes
                rating = amr / universe
                c = {"channel": ch, "boxMinutes": bm, "amr": amr, "ratingPct": rating * 100,
                     "ratingInterval": pct(ref.wilson(rating, universe, z)), "sharePct": bm / total * 100}
                if q.wants_reach:
                    r1, r3 = int(t[4]), int(t[5])
                    c.update({"reach": r1, "reachPct": r1 / universe * 100, "reachInterval": pct(ref.wilson(r1 / universe, universe, z)),
                              "reach3": r3, "reach3Pct": r3 / universe * 100,
                              "reach3Interval": pct(ref.wilson(r3 / universe, universe, z)), "atvMinutes": bm / r1})
                chans.append(c)
            chans.sort(key=lambda c: (-c["boxMinutes"], c["channel"]))
            if q.top is not None:
                chans = chans[:q.top]
            out.append({"minutes": minutes, "channels": chans})
        return {"universe": universe, "series": out}


def pct(ci):
    return {"lowerPct": ci[0] * 100, "upperPct": ci[1] * 100}


def close(a, b, rel=1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rel * max(abs(a), abs(b)) or abs(a - b) < 1e-12


def compare(hub: dict, peer: dict, limit: int = 10) -> list[str]:
    """Mismatches between the hub's answer and the peer's (counts exact, floats to 1e-9 relative)."""
    bad = []
    if hub["universe"]["size"] != peer["universe"]:
        bad.append(f"universe: hub {hub['universe']['size']} peer {peer['universe']}")
    if len(hub["series"]) != len(peer["series"]):
        return bad + [f"rows: hub {len(hub['series'])} peer {len(peer['series'])}"]
    for hrow, prow in zip(hub["series"], peer["series"]):
        where = hrow["from"]
        if hrow["minutes"] != prow["minutes"]:
            bad.append(f"{where} minutes: hub {hrow['minutes']} peer {prow['minutes']}")
        hc = {c["channel"]: c for c in hrow["channels"]}
        pc = {c["channel"]: c for c in prow["channels"]}
        if [c["channel"] for c in hrow["channels"]] != [c["channel"] for c in prow["channels"]] and sorted(hc) != sorted(pc):
            bad.append(f"{where} channels differ: hub-only {sorted(set(hc) - set(pc))[:5]} peer-only {sorted(set(pc) - set(hc))[:5]}")
        for ch in sorted(set(hc) & set(pc)):
            h, p = hc[ch], pc[ch]
            if h.get("suppressed"):
                bad.append(f"{where} {ch}: suppressed on the hub")
                continue
            for k, v in p.items():
                if k == "channel":
                    continue
                hv = h.get(k)
                if isinstance(v, dict):
                    ok = isinstance(hv, dict) and all(close(hv.get(x), v[x]) for x in v)
                elif isinstance(v, int):
                    ok = hv == v
                else:
                    ok = close(hv, v)
                if not ok:
                    bad.append(f"{where} {ch} {k}: hub {hv} peer {v}")
        if len(bad) > limit:
            break
    return bad[:limit]
