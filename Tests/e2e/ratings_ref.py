"""An independent reference implementation of docs/ratings-method.md (issue 11).

Written from the method document alone (not from `Sources/Ratings`), so that an end-to-end test
can drive real boxes, read the raw `events` documents back from the store, recompute every
measure here and compare it with the hub's answers. Standard library only.

Pipeline, one box at a time:

    connections  ->  hub_events (clock correction, skewed / late / horizon filtering)
                 ->  sessions   (tunes, dwell, capping, horizon)
                 ->  minute_credit (BARB: the longest (channel, mode) of each minute, >= 30 s, ties to the first)

then, over all boxes, `measures` (AMR, rating, share, reach >= 1, reach >= 3 consecutive, ATV, Wilson
intervals, k-suppression) for a selection of minutes: a range (`range_minutes`), a bucket of a series
(`bucket_selections`, `series`) or a daypart over days (`parse_dayparts`, `daypart_minutes`).

Times are integer milliseconds since the epoch; a minute is `ms // 60_000`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

MINUTE_MS = 60_000
MODES = ("live", "timeshift", "catchup")
# User actions: they reset the capping timer. play_error, app_crash and portal_reload are the box's own doing.
INTERACTIONS = frozenset({"tune", "leave", "standby_on", "standby_off", "play_start", "play_stop"})
KINDS = INTERACTIONS | {"play_error", "app_crash", "portal_reload"}
SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Params:
    """The method's parameters, with the document's defaults."""
    dwell_ms: int = 10_000
    cap_ms: int = 14_400_000
    minute_minimum_ms: int = 30_000
    future_skew_tolerance_ms: int = 300_000
    late_horizon_ms: int = 172_800_000
    suppression_k: int = 5
    z: float = 1.959963984540054  # docs/ratings-method.md, parameters table


# ---------------------------------------------------------------------------------------------
# Input


@dataclass(frozen=True)
class Event:
    """One stored viewing or app event, as the box sent it: `box_time` is the box's `ts` (its own
    clock), `received_at` the hub's receive time. `mode` only on a tune; none means live."""
    box_time: int
    received_at: int
    kind: str
    channel: str | None = None
    mode: str | None = None


@dataclass
class Connection:
    """The events that arrived on one connection (in `seq` order), and that connection's `hello`:
    the box's `ts` on it and the hub's receive time of it."""
    hello_box_time: int
    hello_received_at: int
    events: list[Event] = field(default_factory=list)

    @property
    def offset(self) -> int:
        return self.hello_received_at - self.hello_box_time


def to_ms(value) -> int:
    """ms since the epoch from an int, or from a BSON datetime as pymongo returns it (naive = UTC)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return (value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)) // _dt.timedelta(milliseconds=1)
    return int(value)


def event_from_doc(doc: Mapping) -> Event:
    """An `events` collection document (`d`, `b`, `s`, `t` box time, `r` received, `e` kind, `ch`,
    `mode`) as an Event."""
    return Event(box_time=to_ms(doc["t"]), received_at=to_ms(doc["r"]), kind=doc["e"],
                 channel=doc.get("ch"), mode=doc.get("mode"))


def connections_from_docs(docs: Iterable[Mapping], hello_of: Callable[[Mapping], tuple[int, int]]) -> dict[str, list[Connection]]:
    """Groups stored event documents into connections, per box (`d`).

    The `events` documents do not say which connection brought them, nor that connection's
    `hello`: `hello_of(doc)` must return `(hello box ts, hello receive time)` of the connection the
    document arrived on (the e2e test knows, since it sent the hellos). Connections are ordered by
    their hello's receive time, events within one by (`b`, `s`).
    """
    groups: dict[str, dict[tuple[int, int], list[Mapping]]] = defaultdict(lambda: defaultdict(list))
    for doc in docs:
        h = hello_of(doc)
        groups[doc["d"]][(to_ms(h[0]), to_ms(h[1]))].append(doc)
    out: dict[str, list[Connection]] = {}
    for box, by_hello in groups.items():
        conns = []
        for (hts, hr), ds in sorted(by_hello.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            ds = sorted(ds, key=lambda d: (d.get("b", ""), d.get("s", 0)))
            conns.append(Connection(hts, hr, [event_from_doc(d) for d in ds]))
        out[box] = conns
    return out


# ---------------------------------------------------------------------------------------------
# Clocks, late data, horizon


@dataclass
class Counts:
    skewed: int = 0
    late: int = 0
    after_horizon: int = 0


@dataclass(frozen=True)
class HubEvent:
    hub_time: int
    kind: str
    channel: str | None
    mode: str


def hub_events(connections: Sequence[Connection], params: Params, horizon: int, counts: Counts | None = None) -> list[HubEvent]:
    """The box's creditable events on the hub's clock, sorted by hub time (stable: events at the
    same hub time keep the order given, connections in order, each in `seq` order).

    - hub time = `ts` + (hello receive time - hello `ts`) of the connection the event came on;
    - skewed (not credited): hub time > receive time + future skew tolerance;
    - late (stored, not credited): hub time < receive time - late horizon;
    - events at or after the horizon are ignored.
    Skewed and late events are dropped entirely: they are not interactions either.
    """
    counts = counts if counts is not None else Counts()
    out: list[HubEvent] = []
    for conn in connections:
        off = conn.offset
        for ev in conn.events:
            if ev.kind not in KINDS:
                raise ValueError(f"unknown event kind {ev.kind!r}")
            h = ev.box_time + off
            if h > ev.received_at + params.future_skew_tolerance_ms:
                counts.skewed += 1
                continue
            if h < ev.received_at - params.late_horizon_ms:
                counts.late += 1
                continue
            if h >= horizon:
                counts.after_horizon += 1
                continue
            mode = (ev.mode or "live") if ev.kind == "tune" else "live"
            out.append(HubEvent(h, ev.kind, ev.channel, mode))
    out.sort(key=lambda e: e.hub_time)  # Python's sort is stable
    return out


# ---------------------------------------------------------------------------------------------
# Sessions


@dataclass(frozen=True)
class Tune:
    channel: str
    mode: str
    start: int
    end: int


@dataclass(frozen=True)
class Session:
    channel: str
    mode: str
    start: int
    end: int


def tunes(events: Sequence[HubEvent], horizon: int) -> list[Tune]:
    """Raw tunes, before dwell and capping. A tune of (channel, mode) already shown is only an
    interaction; a tune ends at the next tune to something else, `leave` or `standby_on`, or, still
    open, at the horizon."""
    out: list[Tune] = []
    cur: tuple[str, str, int] | None = None
    for e in events:
        if e.kind == "tune":
            if cur is not None and (cur[0], cur[1]) == (e.channel, e.mode):
                continue
            if cur is not None:
                out.append(Tune(cur[0], cur[1], cur[2], e.hub_time))
            cur = (e.channel, e.mode, e.hub_time)
        elif e.kind in ("leave", "standby_on"):
            if cur is not None:
                out.append(Tune(cur[0], cur[1], cur[2], e.hub_time))
            cur = None
    if cur is not None:
        out.append(Tune(cur[0], cur[1], cur[2], max(horizon, cur[2])))
    return out


def _covered(interactions: Sequence[int], cap_ms: int) -> list[tuple[int, int]]:
    """Disjoint, sorted [start, end) intervals of times t with an interaction in (t - cap, t]."""
    out: list[list[int]] = []
    for i in sorted(interactions):
        if out and i <= out[-1][1]:
            out[-1][1] = max(out[-1][1], i + cap_ms)
        else:
            out.append([i, i + cap_ms])
    return [(a, b) for a, b in out]


def sessions_from_hub_events(events: Sequence[HubEvent], params: Params, horizon: int) -> list[Session]:
    covered = _covered([e.hub_time for e in events if e.kind in INTERACTIONS], params.cap_ms)
    out: list[Session] = []
    for t in tunes(events, horizon):
        if t.end - t.start < params.dwell_ms:
            continue  # surfing (or an open tune not yet a dwell long)
        for a, b in covered:
            s, e = max(a, t.start), min(b, t.end)
            if s < e:
                out.append(Session(t.channel, t.mode, s, e))
    out.sort(key=lambda s: s.start)
    return out


def sessions(connections: Sequence[Connection], params: Params, horizon: int, counts: Counts | None = None) -> list[Session]:
    """One box's tuning sessions (ordered, disjoint) from its connections, up to `horizon`."""
    return sessions_from_hub_events(hub_events(connections, params, horizon, counts), params, horizon)


# ---------------------------------------------------------------------------------------------
# Minute credit


@dataclass(frozen=True)
class MinuteCredit:
    minute: int
    channel: str
    mode: str


def minute_viewing(box_sessions: Iterable[Session]) -> dict[int, dict[tuple[str, str], list[int]]]:
    """minute -> (channel, mode) -> [ms viewed in the minute, first ms viewed in the minute]."""
    per: dict[int, dict[tuple[str, str], list[int]]] = defaultdict(dict)
    for s in box_sessions:
        t = s.start
        while t < s.end:
            m = t // MINUTE_MS
            e = min(s.end, (m + 1) * MINUTE_MS)
            slot = per[m].setdefault((s.channel, s.mode), [0, t])
            slot[0] += e - t
            slot[1] = min(slot[1], t)
            t = e
    return per


def minute_credit(box_sessions: Iterable[Session], params: Params) -> list[MinuteCredit]:
    """BARB: each minute goes to the (channel, mode) viewed longest in it (summed over its sessions
    in that minute), if at least `minute_minimum_ms`; a tie goes to the one whose viewing in that
    minute began first."""
    out = []
    for m, views in sorted(minute_viewing(box_sessions).items()):
        (ch, mode), (ms, _first) = min(views.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        if ms >= params.minute_minimum_ms:
            out.append(MinuteCredit(m, ch, mode))
    return out


def credits_for_boxes(connections_by_box: Mapping[str, Sequence[Connection]], params: Params, horizon: int,
                      counts: Counts | None = None) -> dict[str, list[MinuteCredit]]:
    return {box: minute_credit(sessions(conns, params, horizon, counts), params) for box, conns in connections_by_box.items()}


# ---------------------------------------------------------------------------------------------
# Measures


def wilson(p: float, n: int, z: float = Params.z) -> tuple[float, float]:
    """Wilson score interval for a proportion p over n, clamped to [0, 1]."""
    if n <= 0:
        raise ValueError("n must be positive")
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At p = 0 (p = 1) the bound is 0 (1) exactly; rounding would leave ~1e-17 instead.
    lo = 0.0 if p <= 0 else max(0.0, centre - half)
    hi = 1.0 if p >= 1 else min(1.0, centre + half)
    return lo, hi


@dataclass
class ChannelMeasures:
    channel: str
    universe: int
    minutes: int  # minutes in the selection
    box_minutes: int
    amr: float
    rating: float  # a proportion (0.3 = 30 %)
    rating_ci: tuple[float, float]
    share: float | None  # None when no channel has a credited minute
    reach1: int
    reach1_pct: float
    reach1_ci: tuple[float, float]
    reach3: int
    reach3_pct: float
    reach3_ci: tuple[float, float]
    atv: float | None  # minutes; None when reach1 = 0
    suppressed: bool

    def cell(self, name: str):
        """A measure as shown: its value, or `suppressed` if the base (U) is below k."""
        return SUPPRESSED if self.suppressed else getattr(self, name)


def has_run(minutes: set[int], selection: set[int], length: int = 3) -> bool:
    """Whether `length` consecutive clock minutes, all in `selection`, are all in `minutes`."""
    return any(all(m + k in minutes and m + k in selection for k in range(length)) for m in minutes)


def measures(credits_by_box: Mapping[str, Iterable[MinuteCredit]], selection: Iterable[int], universe: int,
             channels: Iterable[str] | None = None, modes: Iterable[str] | None = None,
             params: Params = Params()) -> dict[str, ChannelMeasures]:
    """The measures of each channel over a selection of minutes, for a set of modes (default all),
    with universe U (the base). `channels` defaults to every channel credited in the selection; the
    share's denominator is always all channels' box-minutes (selected modes, selection)."""
    sel = set(selection)
    if not sel:
        raise ValueError("empty selection")
    if universe <= 0:
        raise ValueError("universe must be positive")
    mode_set = set(modes) if modes is not None else set(MODES)
    # channel -> box -> set of credited minutes (selected modes, in the selection)
    per: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    total = 0
    for box, creds in credits_by_box.items():
        for c in creds:
            if c.minute in sel and c.mode in mode_set:
                per[c.channel][box].add(c.minute)
                total += 1
    chans = sorted(per) if channels is None else list(channels)
    out = {}
    n_min = len(sel)
    for ch in chans:
        boxes = per.get(ch, {})
        bm = sum(len(ms) for ms in boxes.values())
        amr = bm / n_min
        rating = amr / universe
        r1 = sum(1 for ms in boxes.values() if ms)
        r3 = sum(1 for ms in boxes.values() if has_run(ms, sel))
        out[ch] = ChannelMeasures(
            channel=ch, universe=universe, minutes=n_min, box_minutes=bm, amr=amr, rating=rating,
            rating_ci=wilson(rating, universe, params.z), share=(bm / total) if total else None,
            reach1=r1, reach1_pct=r1 / universe, reach1_ci=wilson(r1 / universe, universe, params.z),
            reach3=r3, reach3_pct=r3 / universe, reach3_ci=wilson(r3 / universe, universe, params.z),
            atv=(bm / r1) if r1 else None, suppressed=universe < params.suppression_k)
    return out


# ---------------------------------------------------------------------------------------------
# Selections: ranges, buckets, dayparts

BUCKETS = {"minute": 1, "15min": 15, "hour": 60, "day": 1440}


def range_minutes(start_ms: int, end_ms: int) -> list[int]:
    """The clock minutes of [start_ms, end_ms): those that start in it (pass minute boundaries)."""
    first = -(-start_ms // MINUTE_MS)
    return list(range(first, -(-end_ms // MINUTE_MS)))


def bucket_selections(start_ms: int, end_ms: int, bucket: str | int, utc_offset_minutes: int = 0) -> list[tuple[int, list[int]]]:
    """(bucket start minute, its minutes within [start, end)) for each bucket the range touches.
    Buckets are `bucket` minutes long, aligned so that a day bucket starts at local midnight."""
    size = BUCKETS[bucket] if isinstance(bucket, str) else int(bucket)
    groups: dict[int, list[int]] = defaultdict(list)
    for m in range_minutes(start_ms, end_ms):
        local = m + utc_offset_minutes
        groups[local - local % size - utc_offset_minutes].append(m)
    return sorted(groups.items())


def series(credits_by_box, start_ms: int, end_ms: int, bucket: str | int, universe: int, channels=None, modes=None,
           params: Params = Params(), utc_offset_minutes: int = 0) -> list[tuple[int, dict[str, ChannelMeasures]]]:
    """Measures per bucket: each bucket (its minutes inside the range) is its own selection."""
    return [(b, measures(credits_by_box, ms, universe, channels, modes, params))
            for b, ms in bucket_selections(start_ms, end_ms, bucket, utc_offset_minutes)]


DEFAULT_DAYPARTS = "breakfast 06-09, daytime 09-17, early_peak 17-19, peak 19-23, late 23-06"


class DaypartError(ValueError):
    def __init__(self, kind: str, *detail):
        super().__init__(f"{kind}{detail if detail else ''}")
        self.kind = kind
        self.detail = detail


_ENTRY = re.compile(r"^(\S+)\s+(\d{1,2})-(\d{1,2})$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def parse_dayparts(text: str) -> dict[str, list[int]]:
    """`NAME HH-HH, ...` -> name -> local hours (in range order). End exclusive; 24 or 00 is
    midnight; an end not after the start wraps past midnight."""
    if not text.strip():
        raise DaypartError("empty")
    out: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for index, raw in enumerate(text.split(",")):
        entry = raw.strip()
        m = _ENTRY.match(entry)
        if not m:
            raise DaypartError("malformedEntry", index, entry)
        name, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        if not _NAME.match(name):
            raise DaypartError("invalidName", name)
        if name in out:
            raise DaypartError("duplicateName", name)
        if not (0 <= a <= 24 and 0 <= b <= 24):
            raise DaypartError("hourOutOfRange", name)
        if a == b:
            raise DaypartError("emptyRange", name)
        a %= 24
        b = 24 if b == 0 else b
        hours = list(range(a, b)) if b > a else list(range(a, 24)) + list(range(0, b))
        for h in hours:
            if h in owner:
                raise DaypartError("overlap", owner[h], name, h)
        for h in hours:
            owner[h] = name
        out[name] = hours
    return out


def daypart_minutes(start_ms: int, end_ms: int, hours: Iterable[int], utc_offset_minutes: int = 0) -> list[int]:
    """The minutes of [start, end) whose local hour (at a fixed UTC offset) is one of `hours`."""
    hs = set(hours)
    return [m for m in range_minutes(start_ms, end_ms) if ((m + utc_offset_minutes) // 60) % 24 in hs]


# ---------------------------------------------------------------------------------------------
# Pseudonymous export ids


def period_key(master: bytes, period: str) -> bytes:
    """HMAC-SHA256(master, "argus-ratings-export:" + period), the raw 32 bytes."""
    return hmac.new(master, ("argus-ratings-export:" + period).encode(), hashlib.sha256).digest()


def pseudonym(box_id: str, key: bytes) -> str:
    """hex(HMAC-SHA256(period key, UTF-8 box id))."""
    return hmac.new(key, box_id.encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------
# All at once, from stored documents


def compute_from_docs(docs: Iterable[Mapping], hello_of, horizon: int, selection: Iterable[int], universe: int,
                      channels=None, modes=None, params: Params = Params()):
    """Stored `events` documents -> (measures per channel, credits per box, counts)."""
    counts = Counts()
    credits = credits_for_boxes(connections_from_docs(docs, hello_of), params, horizon, counts)
    return measures(credits, selection, universe, channels, modes, params), credits, counts
