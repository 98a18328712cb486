"""Tests of the reference ratings implementation (Tests/e2e/ratings_ref.py). No server needed.

(a) the worked example of docs/ratings-method.md, with the document's numbers;
(b) the hypothesis properties are in test_ratings_ref_properties.py;
(c) the Wilson interval against known values; plus unit tests of each rule's edges, dayparts,
    suppression, pseudonyms and the stored-document adapter.
"""
import datetime as dt
import hashlib
import hmac
import math

import pytest

import ratings_ref as R

D = R.Params()


def utc(y, mo, d, h, mi, s=0, ms=0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.timezone.utc).timestamp()) * 1000 + ms


def at(h, mi, s=0, ms=0) -> int:
    return utc(2026, 11, 30, h, mi, s, ms)


def right(events):
    """One connection of a box whose clock is right (offset 0); each event received 40 ms later."""
    t0 = min(e[0] for e in events) - 60_000
    return [R.Connection(t0, t0, [R.Event(t, t + 40, *rest) for t, *rest in events])]


def credit_table(credits_by_box):
    return {box: {c.minute: c.channel for c in cs} for box, cs in credits_by_box.items()}


# ---------------------------------------------------------------------------------------------
# (a) the worked example


def worked_example():
    a = right([(at(20, 0, 0), "tune", "one"), (at(20, 0, 7), "tune", "two"), (at(20, 1, 40), "tune", "one"),
               (at(20, 3, 30), "standby_on")])
    # B: clock 3 h slow: hello stamped 16:58:00 by the box, received 19:58:00.
    b = [R.Connection(at(16, 58), at(19, 58), [
        R.Event(at(17, 0, 30), at(20, 0, 30, 120), "tune", "two"),
        R.Event(at(17, 2, 45), at(20, 2, 45, 80), "leave"),
    ])]
    c = right([(at(20, 1, 10), "tune", "one"), (at(20, 1, 35), "tune", "two"), (at(20, 3, 0), "standby_on")])
    return {"A": a, "B": b, "C": c, "D": [], "E": []}


SELECTION = R.range_minutes(at(20, 0), at(20, 4))
HORIZON = at(20, 10)


def test_worked_example_sessions():
    ex = worked_example()
    assert R.sessions(ex["A"], D, HORIZON) == [R.Session("two", "live", at(20, 0, 7), at(20, 1, 40)),
                                               R.Session("one", "live", at(20, 1, 40), at(20, 3, 30))]
    assert R.sessions(ex["B"], D, HORIZON) == [R.Session("two", "live", at(20, 0, 30), at(20, 2, 45))]
    # Uncorrected, B's viewing would be 17:00-17:02 (box clock): check the offset is what moves it.
    b_raw = [R.Connection(0, 0, ex["B"][0].events)]
    counts = R.Counts()
    assert R.sessions(b_raw, D, HORIZON, counts) == [R.Session("two", "live", at(17, 0, 30), at(17, 2, 45))]
    assert counts.late == 0 and counts.skewed == 0


def test_worked_example_credit_table():
    credits = R.credits_for_boxes(worked_example(), D, HORIZON)
    m = SELECTION
    assert credit_table(credits) == {
        "A": {m[0]: "two", m[1]: "two", m[2]: "one", m[3]: "one"},
        "B": {m[0]: "two", m[1]: "two", m[2]: "two"},
        "C": {m[2]: "two"},
        "D": {}, "E": {},
    }
    # C's 20:01 is a 25 s / 25 s tie: `one` began first, but 25 s < 30 s: no credit.
    views = R.minute_viewing(R.sessions(worked_example()["C"], D, HORIZON))[m[1]]
    assert views == {("one", "live"): [25_000, at(20, 1, 10)], ("two", "live"): [25_000, at(20, 1, 35)]}


def pct(x):
    return round(x * 100, 2)


def test_worked_example_measures():
    credits = R.credits_for_boxes(worked_example(), D, HORIZON)
    ms = R.measures(credits, SELECTION, universe=5, channels=["two", "one"])
    two, one = ms["two"], ms["one"]
    assert (two.box_minutes, one.box_minutes) == (6, 2)
    assert two.box_minutes + one.box_minutes == 8
    assert (two.amr, one.amr) == (1.5, 0.5)
    assert (pct(two.rating), pct(one.rating)) == (30.0, 10.0)
    assert tuple(map(pct, two.rating_ci)) == (7.26, 70.12)
    assert tuple(map(pct, one.rating_ci)) == (1.05, 53.71)
    assert (two.share, one.share) == (0.75, 0.25)
    assert (two.reach1, pct(two.reach1_pct)) == (3, 60.0)
    assert tuple(map(pct, two.reach1_ci)) == (23.07, 88.24)
    assert (one.reach1, pct(one.reach1_pct)) == (1, 20.0)
    assert (two.reach3, pct(two.reach3_pct)) == (1, 20.0)
    assert tuple(map(pct, two.reach3_ci)) == (3.62, 62.45)
    assert (one.reach3, one.reach3_pct) == (0, 0.0)
    assert tuple(map(pct, one.reach3_ci)) == (0.0, 43.45)
    assert (two.atv, one.atv) == (2.0, 2.0)
    # Base 5 >= k = 5: shown; with k = 6 every cell is suppressed.
    assert not two.suppressed and two.cell("rating") == two.rating
    ms6 = R.measures(credits, SELECTION, universe=5, params=R.Params(suppression_k=6))
    assert all(m.suppressed and m.cell(f) == R.SUPPRESSED for m in ms6.values() for f in ("amr", "rating", "reach1", "share"))


def test_worked_example_reach3_is_b_only():
    credits = R.credits_for_boxes(worked_example(), D, HORIZON)
    runs = {box: R.has_run({c.minute for c in cs if c.channel == "two"}, set(SELECTION)) for box, cs in credits.items()}
    assert [b for b, r in runs.items() if r] == ["B"]


# ---------------------------------------------------------------------------------------------
# (c) Wilson


@pytest.mark.parametrize("p,n,z,lo,hi", [
    (0.5, 100, 1.96, 0.403830, 0.596170),     # textbook
    (0.0, 10, 1.96, 0.0, 3.8416 / 13.8416),           # p = 0: upper = z^2 / (n + z^2)
    (1.0, 10, 1.96, 10 / 13.8416, 1.0),
    (0.3, 5, 1.959964, 0.072584, 0.701209),   # the worked example's `two` rating
])
def test_wilson_known_values(p, n, z, lo, hi):
    got = R.wilson(p, n, z)
    assert got == pytest.approx((lo, hi), abs=1e-6)


@pytest.mark.parametrize("k,n", [(0, 5), (1, 5), (3, 5), (5, 5), (17, 40), (1, 1000)])
def test_wilson_against_the_count_form(k, n):
    # The other textbook form: (k + z^2/2 -+ z sqrt(k(n-k)/n + z^2/4)) / (n + z^2).
    z = D.z
    c, h = k + z * z / 2, z * math.sqrt(k * (n - k) / n + z * z / 4)
    assert R.wilson(k / n, n) == pytest.approx((max(0.0, (c - h) / (n + z * z)), min(1.0, (c + h) / (n + z * z))), abs=1e-12)


def test_wilson_brackets_p_and_clamps():
    for n in (1, 2, 5, 50, 1000):
        for k in range(0, n + 1, max(1, n // 7)):
            lo, hi = R.wilson(k / n, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0


# ---------------------------------------------------------------------------------------------
# Unit tests of the rules' edges


T = at(20, 0)


def one_box(events, params=D, horizon=None):
    horizon = horizon if horizon is not None else T + 3_600_000
    return R.sessions(right(events), params, horizon)


def test_dwell_edge():
    assert one_box([(T, "tune", "x"), (T + 9_999, "tune", "y"), (T + 9_999 + 60_000, "leave")]) == \
        [R.Session("y", "live", T + 9_999, T + 69_999)]
    assert one_box([(T, "tune", "x"), (T + 10_000, "tune", "y"), (T + 11_000, "leave")]) == \
        [R.Session("x", "live", T, T + 10_000)]


def test_retune_same_channel_is_only_an_interaction_and_resets_capping():
    p = R.Params(cap_ms=60_000)
    # tune x, re-tune x at +50 s (interaction), nothing until +200 s: credit stops at +110 s.
    assert one_box([(T, "tune", "x"), (T + 50_000, "tune", "x"), (T + 200_000, "leave")], p) == \
        [R.Session("x", "live", T, T + 110_000)]
    # Same channel, other mode: a new tune.
    assert one_box([(T, "tune", "x"), (T + 50_000, "tune", "x", "timeshift"), (T + 100_000, "leave")], p) == \
        [R.Session("x", "live", T, T + 50_000), R.Session("x", "timeshift", T + 50_000, T + 100_000)]
    # No mode = live.
    assert one_box([(T, "tune", "x"), (T + 30_000, "tune", "x", "live"), (T + 40_000, "leave")], p) == \
        [R.Session("x", "live", T, T + 40_000)]


def test_capping_splits_a_tune_and_non_interactions_do_not_reset_it():
    p = R.Params(cap_ms=60_000)
    ev = [(T, "tune", "x"), (T + 30_000, "play_error"), (T + 100_000, "play_start"), (T + 300_000, "standby_on")]
    assert one_box(ev, p) == [R.Session("x", "live", T, T + 60_000), R.Session("x", "live", T + 100_000, T + 160_000)]
    # standby_off neither starts nor ends a tune, but is an interaction.
    ev = [(T, "tune", "x"), (T + 50_000, "standby_off"), (T + 300_000, "leave")]
    assert one_box(ev, p) == [R.Session("x", "live", T, T + 110_000)]


def test_standby_and_leave_end_a_tune_and_nothing_until_the_next_tune():
    ev = [(T, "tune", "x"), (T + 20_000, "standby_on"), (T + 30_000, "standby_off"), (T + 40_000, "play_start"),
          (T + 50_000, "tune", "y"), (T + 70_000, "leave")]
    assert one_box(ev) == [R.Session("x", "live", T, T + 20_000), R.Session("y", "live", T + 50_000, T + 70_000)]


def test_horizon():
    ev = [(T, "tune", "x"), (T + 100_000, "tune", "y")]
    # Events at or after the horizon are ignored; an open tune ends at it.
    assert one_box(ev, horizon=T + 100_000) == [R.Session("x", "live", T, T + 100_000)]
    # An open tune shorter than the dwell earns nothing yet.
    assert one_box(ev, horizon=T + 109_999) == [R.Session("x", "live", T, T + 100_000)]
    assert one_box(ev, horizon=T + 110_000)[-1] == R.Session("y", "live", T + 100_000, T + 110_000)


def clocked(offset_box_minus_hub, events, delay=40):
    """One connection of a box whose clock reads hub + offset; events as (hub time, box jump, kind, ch)."""
    hr = T - 600_000
    return [R.Connection(hr + offset_box_minus_hub, hr,
                         [R.Event(t + offset_box_minus_hub + jump, t + delay, k, *rest) for t, jump, k, *rest in events])]


def test_future_skew_edge():
    tol = D.future_skew_tolerance_ms
    for jump, skewed in ((tol + 40, 0), (tol + 41, 1)):  # hub time = receive time + tol is still credited
        counts = R.Counts()
        conns = clocked(-7_200_000, [(T, 0, "tune", "x"), (T + 60_000, jump, "leave")])
        s = R.sessions(conns, D, T + 3_600_000, counts)
        assert counts.skewed == skewed
        assert s[0].end == (T + 3_600_000 if skewed else T + 60_000 + jump)


def test_late_edge():
    late = D.late_horizon_ms
    for delay, n_late in ((late, 0), (late + 1, 1)):
        counts = R.Counts()
        conns = clocked(0, [(T, 0, "tune", "x"), (T + 60_000, 0, "leave")], delay=delay)
        s = R.sessions(conns, D, T + 3_600_000 + late, counts)
        assert counts.late == 2 * n_late
        assert s == ([] if n_late else [R.Session("x", "live", T, T + 60_000)])


def test_same_hub_time_applies_in_given_order():
    # tune y and leave at the same hub time: order given decides.
    assert one_box([(T, "tune", "x"), (T + 60_000, "tune", "y"), (T + 60_000, "leave")]) == \
        [R.Session("x", "live", T, T + 60_000)]
    assert one_box([(T, "tune", "x"), (T + 60_000, "leave"), (T + 60_000, "tune", "y"), (T + 90_000, "leave")]) == \
        [R.Session("x", "live", T, T + 60_000), R.Session("y", "live", T + 60_000, T + 90_000)]


def test_minute_credit_sums_sessions_and_breaks_ties_by_first_viewing():
    M = T // 60_000
    s = [R.Session("x", "live", T, T + 10_000), R.Session("y", "live", T + 10_000, T + 30_000),
         R.Session("x", "live", T + 30_000, T + 50_000)]  # x 30 s in two parts, y 20 s
    assert R.minute_credit(s, D) == [R.MinuteCredit(M, "x", "live")]
    s = [R.Session("y", "catchup", T, T + 30_000), R.Session("x", "live", T + 30_000, T + 60_000)]
    assert R.minute_credit(s, D) == [R.MinuteCredit(M, "y", "catchup")]
    assert R.minute_credit([R.Session("x", "live", T, T + 29_999)], D) == []


def test_modes_and_reach3_across_modes():
    M = T // 60_000
    credits = {"a": [R.MinuteCredit(M, "x", "live"), R.MinuteCredit(M + 1, "x", "timeshift"), R.MinuteCredit(M + 2, "x", "live")],
               "b": [R.MinuteCredit(M, "x", "catchup")]}
    sel = [M, M + 1, M + 2]
    all_modes = R.measures(credits, sel, 5)["x"]
    assert (all_modes.box_minutes, all_modes.reach1, all_modes.reach3) == (4, 2, 1)
    live = R.measures(credits, sel, 5, modes=["live"])["x"]
    assert (live.box_minutes, live.reach1, live.reach3) == (2, 1, 0)
    # The run must lie inside the selection.
    assert R.measures(credits, [M, M + 2], 5)["x"].reach3 == 0


def test_daypart_selection_needs_consecutive_clock_minutes():
    # A run across 22:59-23:01 has 22:59 in `peak` and 23:00, 23:01 in `late`: no 3-run in either.
    parts = R.parse_dayparts(R.DEFAULT_DAYPARTS)
    start, end = at(0, 0) - 86_400_000, at(0, 0) + 2 * 86_400_000
    M = at(22, 59) // 60_000
    credits = {"a": [R.MinuteCredit(M + k, "x", "live") for k in range(3)]}
    peak = R.daypart_minutes(start, end, parts["peak"])
    late = R.daypart_minutes(start, end, parts["late"])
    assert len(peak) == 3 * 4 * 60 and len(late) == 3 * 7 * 60
    assert R.measures(credits, peak, 5)["x"].reach3 == 0
    assert R.measures(credits, late, 5)["x"].reach3 == 0
    assert R.measures(credits, peak + late, 5)["x"].reach3 == 1


def test_dayparts_parse():
    parts = R.parse_dayparts(R.DEFAULT_DAYPARTS)
    assert parts == {"breakfast": [6, 7, 8], "daytime": list(range(9, 17)), "early_peak": [17, 18],
                     "peak": [19, 20, 21, 22], "late": [23, 0, 1, 2, 3, 4, 5]}
    assert R.parse_dayparts("a 22-24, b 00-02") == {"a": [22, 23], "b": [0, 1]}
    assert R.parse_dayparts("a 23-00") == {"a": [23]}
    assert R.parse_dayparts("a 00-24") == {"a": list(range(24))}
    for text, kind in [("", "empty"), (" ", "empty"), ("a 1-2,", "malformedEntry"), ("a 01", "malformedEntry"),
                       ("A 01-02", "invalidName"), ("1a 01-02", "invalidName"), ("a" * 33 + " 01-02", "invalidName"),
                       ("a 01-02, a 03-04", "duplicateName"), ("a 01-25", "hourOutOfRange"), ("a 05-05", "emptyRange"),
                       ("a 20-02, b 01-03", "overlap")]:
        with pytest.raises(R.DaypartError) as e:
            R.parse_dayparts(text)
        assert e.value.kind == kind, text
    assert R.parse_dayparts("a" * 32 + " 01-02")
    with pytest.raises(R.DaypartError) as e:
        R.parse_dayparts("a 20-02, b 01-03")
    assert e.value.detail == ("a", "b", 1)


def test_daypart_local_offset():
    parts = R.parse_dayparts("x 06-07")
    ms = R.daypart_minutes(at(0, 0), at(0, 0) + 86_400_000, parts["x"], utc_offset_minutes=60)
    assert ms[0] == at(5, 0) // 60_000 and len(ms) == 60


def test_buckets():
    b = R.bucket_selections(at(20, 0), at(22, 30), "hour")
    assert [len(ms) for _, ms in b] == [60, 60, 30] and b[0][0] == at(20, 0) // 60_000
    b = R.bucket_selections(at(20, 0), at(20, 0) + 2 * 86_400_000, "day", utc_offset_minutes=-300)
    assert [len(ms) for _, ms in b] == [540, 1440, 900]  # local 15:00-24:00, a day, 00:00-15:00
    assert all((start + -300) % 1440 == 0 for start, _ in b)
    assert [len(ms) for _, ms in R.bucket_selections(at(20, 0), at(21, 0), "15min")] == [15] * 4
    assert len(R.bucket_selections(at(20, 0), at(20, 5), "minute")) == 5
    credits = R.credits_for_boxes(worked_example(), D, HORIZON)
    s = R.series(credits, at(20, 0), at(20, 4), "minute", 5)
    assert [m["two"].box_minutes if "two" in m else 0 for _, m in s] == [2, 2, 2, 0]


def test_pseudonyms():
    master = b"master-secret"
    k1, k2 = R.period_key(master, "2026-11"), R.period_key(master, "2026-12")
    assert k1 == hmac.new(master, b"argus-ratings-export:2026-11", hashlib.sha256).digest()
    assert k1 != k2 and R.pseudonym("stb-1", k1) != R.pseudonym("stb-1", k2)
    assert R.pseudonym("stb-1", k1) == hmac.new(k1, b"stb-1", hashlib.sha256).hexdigest()
    assert len(R.pseudonym("stb-1", k1)) == 64 and "stb-1" not in R.pseudonym("stb-1", k1)
    # RFC 4231 test case 2 (the HMAC itself).
    assert R.pseudonym("what do ya want for nothing?", b"Jefe") == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_from_stored_documents():
    """The adapter reads `events` documents as pymongo returns them (BSON dates as naive UTC datetimes)."""
    def d(ms):
        return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).replace(tzinfo=None)
    hello_b = (at(16, 58), at(19, 58))
    docs = [
        {"_id": "B|k|3", "d": "B", "b": "k", "s": 3, "t": d(at(17, 2, 45)), "r": d(at(20, 2, 45, 80)), "e": "leave"},
        {"_id": "B|k|2", "d": "B", "b": "k", "s": 2, "t": d(at(17, 0, 30)), "r": d(at(20, 0, 30, 120)), "e": "tune", "ch": "two"},
        {"_id": "A|k|2", "d": "A", "b": "k", "s": 2, "t": d(at(20, 0, 7)), "r": d(at(20, 0, 7, 5)), "e": "tune", "ch": "two"},
        {"_id": "A|k|3", "d": "A", "b": "k", "s": 3, "t": d(at(20, 1, 40)), "r": d(at(20, 1, 40, 5)), "e": "tune", "ch": "one",
         "mode": "catchup"},
        {"_id": "A|k|4", "d": "A", "b": "k", "s": 4, "t": d(at(20, 3, 30)), "r": d(at(20, 3, 30, 5)), "e": "standby_on"},
    ]
    hellos = {"B": hello_b, "A": (at(19, 0), at(19, 0))}
    ms, credits, counts = R.compute_from_docs(docs, lambda doc: hellos[doc["d"]], HORIZON, SELECTION, 5)
    assert credit_table(credits) == {"A": {SELECTION[0]: "two", SELECTION[1]: "two", SELECTION[2]: "one", SELECTION[3]: "one"},
                                     "B": {SELECTION[0]: "two", SELECTION[1]: "two", SELECTION[2]: "two"}}
    assert credits["A"][2].mode == "catchup"
    assert ms["two"].box_minutes == 5 and counts.skewed == counts.late == 0
    assert "one" not in R.measures(credits, SELECTION, 5, modes=["live"])
    assert R.measures(credits, SELECTION, 5, modes=["catchup"])["one"].box_minutes == 2
