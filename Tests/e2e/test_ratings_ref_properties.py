"""Properties of the reference ratings implementation (Tests/e2e/ratings_ref.py): sessions and
minute credit against a brute-force per-second simulation written separately below, on random
event streams (dwell edges, capping, standby, skewed and late clocks, horizons), and measures
against their per-box definitions. No server needed. The worked example, Wilson and the rules'
edges are in test_ratings_ref.py.
"""
from collections import defaultdict

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import ratings_ref as R  # noqa: E402

D = R.Params()


# ---------------------------------------------------------------------------------------------
# (b) properties against a brute-force per-second simulation
#
# Everything is on a 1 s grid, so a second [τ, τ + 1 s) is viewed as a whole or not at all.


def brute_credits(conns, params, horizon):
    """Per-box credit by ticking through every second. Written without the reference's helpers."""
    tol, lateh = params.future_skew_tolerance_ms, params.late_horizon_ms
    kept, skewed, late = [], 0, 0
    for ci, c in enumerate(conns):
        for ei, e in enumerate(c.events):
            hub = c.hello_received_at + (e.box_time - c.hello_box_time)
            if hub - e.received_at > tol:
                skewed += 1
            elif e.received_at - hub > lateh:
                late += 1
            elif hub < horizon:
                kept.append((hub, ci, ei, e))
    kept.sort(key=lambda x: (x[0], x[1], x[2]))
    if not kept:
        return [], skewed, late
    # State after all events with hub time <= τ, for every second τ from the first event to the horizon.
    states = []  # (tune id or None, key, last interaction)
    showing, tune_id, last_inter = None, None, None
    i = 0
    for tau in range(kept[0][0], horizon, 1000):
        while i < len(kept) and kept[i][0] <= tau:
            hub, _, _, e = kept[i]
            i += 1
            if e.kind in ("tune", "leave", "standby_on", "standby_off", "play_start", "play_stop"):
                last_inter = hub
            if e.kind == "tune":
                key = (e.channel, e.mode if e.mode else "live")
                if showing != key:
                    showing, tune_id = key, (key, hub, i)
            elif e.kind in ("leave", "standby_on"):
                showing, tune_id = None, None
        states.append((tau, tune_id, last_inter))
    length = defaultdict(int)  # seconds each tune is shown before the horizon
    for _, tid, _ in states:
        if tid is not None:
            length[tid] += 1000
    per_minute = defaultdict(lambda: defaultdict(lambda: [0, None]))
    for tau, tid, li in states:
        if tid is None or length[tid] < params.dwell_ms or tau - li >= params.cap_ms:
            continue
        slot = per_minute[tau // 60_000][tid[0]]
        slot[0] += 1000
        if slot[1] is None:
            slot[1] = tau
    out = []
    for m in sorted(per_minute):
        best = None
        for key, (secs, first) in per_minute[m].items():
            if best is None or secs > best[1] or (secs == best[1] and first < best[2]):
                best = (key, secs, first)
        if best[1] >= params.minute_minimum_ms:
            out.append(R.MinuteCredit(m, best[0][0], best[0][1]))
    return out, skewed, late


BASE = 1_796_083_200_000  # a minute boundary (2026-12-01 00:00 UTC)

GAPS = st.sampled_from([0, 0, 0, 1, 2, 5, 9, 10, 11, 15, 20, 29, 30, 30, 30, 31, 40, 59, 60, 60, 61, 90, 150, 300])
KIND = st.sampled_from(["tune"] * 8 + ["leave", "standby_on", "standby_off", "play_start", "play_stop",
                                       "play_error", "app_crash", "portal_reload"])
CHANNEL = st.sampled_from(["a", "b", "c"])
MODE = st.sampled_from([None, None, None, "live", "timeshift", "catchup"])
# The box's clock jumps after hello (seconds): mostly not, sometimes by less or more than the tolerance.
JUMP = st.sampled_from([0] * 12 + [-7200, -120, -30, 30, 59, 60, 61, 120, 7200])
# Receive delay (seconds): mostly prompt; sometimes a resend from a buffer, beyond the late horizon.
DELAY = st.sampled_from([0] * 10 + [1, 5, 299, 300, 301, 900])


@st.composite
def connection(draw, start):
    offset = draw(st.sampled_from([0, 0, -10_800, 10_800, -37, 3600 * 26])) * 1000  # box clock - hub clock
    hello_hub = start + draw(st.one_of(st.just(0), st.integers(0, 20).map(lambda k: k * 30), st.integers(0, 600))) * 1000
    events, t = [], hello_hub
    for _ in range(draw(st.integers(0, 12))):
        t += draw(GAPS) * 1000
        kind = draw(KIND)
        ch = draw(CHANNEL) if kind == "tune" else None
        mode = draw(MODE) if kind == "tune" else None
        box_time = t + offset + draw(JUMP) * 1000
        events.append(R.Event(box_time, t + draw(DELAY) * 1000, kind, ch, mode))
    return R.Connection(hello_hub + offset, hello_hub, events)


@st.composite
def box(draw):
    start = BASE + draw(st.one_of(st.sampled_from([0, 30]), st.integers(0, 59))) * 1000  # often on :00 or :30 (ties)
    conns = draw(st.lists(connection(start), min_size=1, max_size=3))
    horizon = start + draw(st.integers(0, 40 * 60)) * 1000
    return conns, horizon


PARAMS = st.builds(R.Params, cap_ms=st.sampled_from([30_000, 60_000, 120_000, 300_000, 14_400_000]),
                   future_skew_tolerance_ms=st.sampled_from([60_000, 300_000]),
                   late_horizon_ms=st.sampled_from([300_000, 172_800_000]),
                   dwell_ms=st.sampled_from([10_000, 10_000, 1_000, 30_000]))

PROPS = settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(box(), PARAMS)
def test_minute_credit_matches_brute_force(b, params):
    conns, horizon = b
    counts = R.Counts()
    got = R.minute_credit(R.sessions(conns, params, horizon, counts), params)
    want, skewed, late = brute_credits(conns, params, horizon)
    assert got == want
    assert (counts.skewed, counts.late) == (skewed, late)


@PROPS
@given(box(), PARAMS)
def test_sessions_are_ordered_disjoint_and_within_rules(b, params):
    conns, horizon = b
    ss = R.sessions(conns, params, horizon)
    for s in ss:
        assert s.start < s.end <= horizon
        assert s.mode in R.MODES
    for x, y in zip(ss, ss[1:]):
        assert x.end <= y.start
    credits = R.minute_credit(ss, params)
    assert [c.minute for c in credits] == sorted({c.minute for c in credits})
    # At most one credited minute per 30 s viewed, and every credited minute had >= 30 s of its channel.
    viewed = sum(s.end - s.start for s in ss)
    assert len(credits) * params.minute_minimum_ms <= viewed


@st.composite
def fleet_credits(draw):
    M0 = BASE // 60_000
    n_boxes = draw(st.integers(1, 8))
    out = {}
    for bx in range(n_boxes):
        minutes = draw(st.lists(st.integers(0, 20), unique=True, max_size=15))
        out[f"b{bx}"] = [R.MinuteCredit(M0 + m, draw(CHANNEL), draw(st.sampled_from(R.MODES))) for m in sorted(minutes)]
    sel = draw(st.lists(st.integers(0, 20), unique=True, min_size=1))
    return out, [M0 + m for m in sel], n_boxes + draw(st.integers(0, 5))


@settings(max_examples=300, deadline=None, database=None)
@given(fleet_credits(), st.sets(st.sampled_from(R.MODES), min_size=1))
def test_measures_match_per_box_definitions(f, modes):
    credits, sel, U = f
    ms = R.measures(credits, sel, U, channels=["a", "b", "c"], modes=modes)
    total = sum(1 for cs in credits.values() for c in cs if c.minute in sel and c.mode in modes)
    for ch, m in ms.items():
        per_box = {bx: sorted(c.minute for c in cs if c.channel == ch and c.mode in modes and c.minute in sel)
                   for bx, cs in credits.items()}
        # rating = mean over the universe of each box's viewed fraction of the selection
        assert m.rating == pytest.approx(sum(len(v) / len(sel) for v in per_box.values()) / U)
        assert m.box_minutes == sum(len(v) for v in per_box.values())
        assert m.reach1 == sum(1 for v in per_box.values() if v)
        sset = set(sel)
        assert m.reach3 == sum(1 for v in per_box.values()
                               if any(v[i] + 1 == v[i + 1] and v[i] + 2 == v[i + 2] and all(x in sset for x in v[i:i + 3])
                                      for i in range(len(v) - 2)))
        assert m.share == (m.box_minutes / total if total else None)
        assert m.atv == (m.box_minutes / m.reach1 if m.reach1 else None)
        lo, hi = m.rating_ci
        assert lo <= m.rating <= hi
