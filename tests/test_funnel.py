"""alignment.funnel: hand-counted cohorts, SLA in business hours, capacity and dispositions,
Ibis on DuckDB against plain pandas references, and the demo generator's planted truth."""

from __future__ import annotations

import json
from datetime import datetime

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from alignment import funnel
from alignment.params import FunnelParams, Quarter

Q3 = Quarter.parse("2026Q3")
PARAMS = FunnelParams()  # 24 business hours; SAL 30, SQL 90, won 180 days


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def utc(moment: str) -> datetime:
    return at(moment).to_pydatetime()


@pytest.fixture
def con() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


def stage_frame(rows: list[tuple]) -> pd.DataFrame:
    """``(person_id, stage, entered_at[, owner_user_id[, reason]])`` rows."""
    full = [(*row, *([None] * (5 - len(row)))) for row in rows]
    frame = pd.DataFrame(
        full, columns=["person_id", "stage", "entered_at", "owner_user_id", "reason"]
    )
    frame["entered_at"] = pd.to_datetime(frame["entered_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    for column in ("owner_user_id", "reason"):
        frame[column] = frame[column].astype("string")
    return frame


def touch_frame(rows: list[tuple]) -> pd.DataFrame:
    """``(touch_id, person_id, ts, channel, is_sales_touch[, user_id[, campaign_id]])`` rows."""
    full = [(*row, *([None] * (7 - len(row)))) for row in rows]
    columns = [
        "touch_id",
        "person_id",
        "ts",
        "channel",
        "is_sales_touch",
        "user_id",
        "campaign_id",
    ]
    frame = pd.DataFrame(full, columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[us, UTC]")
    frame["is_sales_touch"] = frame["is_sales_touch"].astype(bool)
    for column in ("user_id", "campaign_id"):
        frame[column] = frame[column].astype("string")
    return frame


def people_accounts(person_ids, segment="SMB", region="EMEA") -> tuple[ibis.Table, ibis.Table]:
    """One account per person; segment and region constant or a dict per person."""
    person_ids = list(person_ids)
    seg = segment if isinstance(segment, dict) else dict.fromkeys(person_ids, segment)
    reg = region if isinstance(region, dict) else dict.fromkeys(person_ids, region)
    people = pd.DataFrame({"person_id": person_ids, "account_id": [f"a_{p}" for p in person_ids]})
    accounts = pd.DataFrame(
        {
            "account_id": [f"a_{p}" for p in person_ids],
            "segment": [seg[p] for p in person_ids],
            "region": [reg[p] for p in person_ids],
        }
    )
    return ibis.memtable(people), ibis.memtable(accounts)


# --------------------------------------------------------------------------------------------
# Stage timeline and cohort conversion, hand-counted
# --------------------------------------------------------------------------------------------

COHORT_EVENTS = stage_frame(
    [
        ("p1", "MQL", "2026-07-01 09:00"),
        ("p1", "SAL", "2026-07-10 09:00"),  # 9 days: SAL in window
        ("p1", "SQL", "2026-08-01 09:00"),  # 31 days: SQL in window
        ("p2", "MQL", "2026-07-05 09:00"),
        ("p2", "SAL", "2026-08-10 09:00"),  # 36 days > 30: SAL too late
        ("p2", "SQL", "2026-09-01 09:00"),  # 58 days: SQL in window
        ("p3", "MQL", "2026-07-20 09:00"),
        ("p3", "Disqualified", "2026-07-25 09:00", "u1", "no budget"),  # rejected
        ("p4", "MQL", "2026-08-01 09:00"),
        ("p4", "SQL", "2026-08-05 09:00"),  # SAL skipped: reached SAL at the SQL time
        ("p5", "SAL", "2026-08-09 09:00"),  # out of order: SAL a day before its MQL
        ("p5", "MQL", "2026-08-10 09:00"),
        ("p6", "MQL", "2026-09-01 12:00"),
        ("p6", "MQL", "2026-09-01 12:00"),  # exact duplicate: counts once
        ("p6", "SAL", "2026-10-01 12:00"),  # exactly 30 days: the window's end is included
        ("p7", "MQL", "2026-06-15 09:00"),  # first MQL in Q2: not in the Q3 cohort
        ("p7", "MQL", "2026-09-20 09:00"),  # a repeat MQL does not start a new cohort
        ("p8", "MQL", "2026-09-20 09:00"),  # nothing after: no conversion
    ]
)


def test_timeline_keeps_first_entry_per_stage_and_reaches_skipped_stages(con) -> None:
    timeline = con.execute(funnel.build_stage_timeline(ibis.memtable(COHORT_EVENTS)))
    row = timeline.set_index("person_id")
    assert row.at["p7", "mql_at"] == at("2026-06-15 09:00")  # first of two MQLs
    assert row.at["p4", "sal_at"] is None or pd.isna(row.at["p4", "sal_at"])
    assert row.at["p4", "sal_reached_at"] == at("2026-08-05 09:00")  # via its SQL
    assert row.at["p5", "sal_reached_at"] == at("2026-08-09 09:00")  # kept, before its MQL
    assert row.at["p3", "disqualified_reason"] == "no budget"
    assert len(timeline) == 8  # p6's duplicate MQL made no second row


def test_cohort_conversion_matches_hand_count(con) -> None:
    result = funnel.measure_cohort_conversion(
        ibis.memtable(COHORT_EVENTS), Q3, PARAMS, as_of=utc("2026-12-31"), con=con
    )
    # Reference, by hand: the Q3 cohort is p1, p2, p3, p4, p5, p6, p8 (7 MQLs; p7 is Q2's).
    # SAL within 30 days: p1 (9 d), p4 (skipped, 4 d), p5 (-1 d, out of order), p6 (30 d,
    # end included) = 4. SQL within 90 days: p1 (31 d), p2 (58 d), p4 (4 d) = 3.
    # Acceptance: accepted p1, p2, p4, p5, p6 (5); rejected p3 (1); pending p8: 5 / 6.
    # As of 2026-12-31 every 30- and 90-day window of Q3 has closed (Sep 30 + 90 d = Dec 29).
    table = result.summary().set_index("step")
    assert table.loc["MQL→SAL", ["n", "n_reached", "n_open"]].tolist() == [7, 4, 0]
    assert table.loc["MQL→SQL", ["n", "n_reached", "n_open"]].tolist() == [7, 3, 0]
    assert table.loc["MQL→SAL accepted", ["n", "n_reached", "n_open"]].tolist() == [6, 5, 1]
    assert not table.loc["MQL→SAL accepted", "is_censored"]  # p8 pending, not censored
    assert result.rate(Q3, "SAL") == pytest.approx(4 / 7)
    assert result.rate(Q3, "SQL") == pytest.approx(3 / 7)
    assert result.rate(Q3, "accepted") == pytest.approx(5 / 6)
    assert not table.loc["MQL→SAL", "is_censored"]
    assert not table.loc["MQL→SQL", "is_censored"]


def test_open_windows_are_flagged_censored_not_counted_as_failures(con) -> None:
    result = funnel.measure_cohort_conversion(
        ibis.memtable(COHORT_EVENTS), Q3, PARAMS, as_of=utc("2026-10-15"), con=con
    )
    # Reference, by hand, as of Oct 15: SAL windows closed except p8's (Sep 20 + 30 = Oct 20):
    # 4 reached, 1 open. SQL: reached p1, p2, p4 (3); still open (MQL after Jul 17, so the
    # window ends after Oct 15, and not reached): p3, p5, p6, p8 = 4.
    # Customer within 180 days: nobody yet, every window open (7).
    table = result.summary().set_index("step")
    assert table.loc["MQL→SAL", ["n_reached", "n_open", "is_censored"]].tolist() == [4, 1, True]
    assert table.loc["MQL→SQL", ["n_reached", "n_open", "is_censored"]].tolist() == [3, 4, True]
    assert table.loc["MQL→Customer", ["n_reached", "n_open"]].tolist() == [0, 7]
    assert table.loc["MQL→SQL", "window_closes_at"] == at("2026-12-30")


def test_events_after_as_of_are_unknown(con) -> None:
    # p6's SAL (Oct 1 12:00) happens after an Oct 1 00:00 cut-off: it is open, not reached.
    result = funnel.measure_cohort_conversion(
        ibis.memtable(COHORT_EVENTS), Q3, PARAMS, as_of=utc("2026-10-01"), con=con
    )
    row = result.summary().set_index("step").loc["MQL→SAL"]
    assert (row.n_reached, row.n_open) == (3, 2)  # p6 and p8 open


def test_empty_quarter_gives_zero_counts_and_nan_rates(con) -> None:
    result = funnel.measure_cohort_conversion(
        ibis.memtable(COHORT_EVENTS), Quarter.parse("2025Q1"), PARAMS, con=con
    )
    row = result.summary().set_index("step").loc["MQL→SAL"]
    assert row.n == 0 and np.isnan(row.rate)


def test_velocity_median_and_p90_with_out_of_order_clipped(con) -> None:
    result = funnel.measure_velocity(ibis.memtable(COHORT_EVENTS), Q3, as_of=utc("2026-12-31"))
    row = result.summary().set_index("transition").loc["MQL→SAL"]
    # Reference, by hand: MQL→SAL days p1 9, p2 36, p4 4, p5 -1 → 0 (clipped), p6 30.
    # Sorted 0, 4, 9, 30, 36: median 9; p90 (linear) at position 3.6: 30 + 0.6 × 6 = 33.6.
    assert row.n == 5
    assert row.median_days == pytest.approx(9.0)
    assert row.p90_days == pytest.approx(33.6)
    assert row.n_out_of_order == 1


def test_tied_stage_events_keep_a_named_owner(con) -> None:
    events = stage_frame(
        [
            ("p1", "MQL", "2026-07-01 09:00", None),
            ("p1", "MQL", "2026-07-01 09:00", "u2"),
            ("p1", "MQL", "2026-07-01 09:00", "u1"),
        ]
    )
    timeline = con.execute(funnel.build_stage_timeline(ibis.memtable(events)))
    assert timeline.mql_owner_user_id.tolist() == ["u1"]  # non-null first, then by id


# --------------------------------------------------------------------------------------------
# Cohort aggregation on DuckDB against a plain pandas reference (seeded random data)
# --------------------------------------------------------------------------------------------


def random_stage_events(seed: int, n_people: int = 300) -> pd.DataFrame:
    """Random stage histories with repeats, ties and out-of-order events."""
    rng = np.random.default_rng(seed)
    base = at("2026-01-01")
    rows = []
    for i in range(n_people):
        person = f"p{i:04d}"
        n_events = rng.integers(1, 9)
        stages = rng.choice(funnel.STAGES, size=n_events)
        hours = rng.integers(0, 24 * 300, size=n_events)
        for stage, hour in zip(stages, hours, strict=True):
            rows.append((person, str(stage), base + pd.Timedelta(hours=int(hour))))
        if rng.random() < 0.2:  # an exact duplicate
            rows.append(rows[-1])
    frame = stage_frame([(p, s, t.isoformat()) for p, s, t in rows])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def pandas_cohort_counts(events: pd.DataFrame, params: FunnelParams, as_of) -> pd.DataFrame:
    """Reference: the module docstring's definitions in plain pandas."""
    first = events.groupby(["person_id", "stage"]).entered_at.min().unstack()
    for stage in funnel.STAGES:
        if stage not in first.columns:
            first[stage] = pd.NaT
    reached = {
        "sal": first[["SAL", "SQL", "Opportunity", "Customer"]].min(axis=1),
        "sql": first[["SQL", "Opportunity", "Customer"]].min(axis=1),
        "won": first["Customer"],
    }
    windows = {
        "sal": params.sal_window_days,
        "sql": params.sql_window_days,
        "won": params.won_window_days,
    }
    mql = first["MQL"]
    cohort = mql.notna() & (mql <= as_of)
    out = pd.DataFrame(index=first.index[cohort])
    mql = mql[cohort]
    out["quarter"] = mql.dt.year.astype(str) + "Q" + mql.dt.quarter.astype(str)
    for name, days in windows.items():
        r = reached[name][cohort]
        deadline = mql + pd.Timedelta(days=days)
        inside = r.notna() & (r <= deadline) & (r <= as_of)
        out[f"n_{name}"] = inside
        out[f"n_{name}_open"] = ~inside & (deadline > as_of)
    accepted = reached["sal"][cohort].notna() & (reached["sal"][cohort] <= as_of)

    def after(col: pd.Series) -> pd.Series:
        col = col[cohort]
        return col.notna() & (col >= mql) & (col <= as_of)

    out["n_accepted"] = accepted
    out["n_rejected"] = ~accepted & (after(first["Disqualified"]) | after(first["Recycled"]))
    counts = out.groupby("quarter").sum().astype("int64")
    counts.insert(0, "n_mql", out.groupby("quarter").size().astype("int64"))
    return counts.sort_index()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cohort_aggregation_on_duckdb_matches_pandas_reference(con, seed) -> None:
    events = random_stage_events(seed)
    as_of = at("2026-09-15")
    flags = funnel.build_cohort_flags(
        funnel.build_stage_timeline(ibis.memtable(events)),
        params=PARAMS,
        as_of=as_of.to_pydatetime(),
    )
    got = con.execute(funnel.aggregate_cohorts(flags)).set_index("quarter").sort_index()
    # Reference: pandas groupby on the same rows. Tolerance: exact (integer counts).
    expected = pandas_cohort_counts(events, PARAMS, as_of)
    pd.testing.assert_frame_equal(
        got[expected.columns].astype("int64"), expected, check_names=False
    )


def random_touches(seed: int, person_ids, n_touches: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = at("2026-01-01")
    hours = rng.integers(0, 24 * 300, size=n_touches)
    rows = [
        (
            f"t{i:05d}",
            str(rng.choice(person_ids)),
            (base + pd.Timedelta(hours=int(h))).isoformat(),
            str(rng.choice(["email", "webinar", "paid_search", "sdr_call"])),
            bool(rng.random() < 0.4),
            f"u{rng.integers(0, 5)}",
        )
        for i, h in enumerate(hours)
    ]
    return touch_frame(rows)


@pytest.mark.parametrize("seed", [4, 5])
def test_first_sales_touch_matches_pandas_reference(con, seed) -> None:
    events = random_stage_events(seed, n_people=120)
    touches = random_touches(seed, sorted(events.person_id.unique()))
    timeline = funnel.build_stage_timeline(ibis.memtable(events))
    got = con.execute(funnel.build_first_sales_touches(ibis.memtable(touches), timeline))
    got = got.set_index("person_id").first_sales_touch_at.sort_index()
    # Reference: for each MQL, the earliest sales touch at or after its first MQL (pandas).
    mql = events[events.stage == "MQL"].groupby("person_id").entered_at.min().rename("mql_at")
    sales = touches[touches.is_sales_touch].join(mql, on="person_id", how="inner")
    sales = sales[sales.ts >= sales.mql_at]
    expected = sales.groupby("person_id").ts.min().sort_index()
    assert got.index.tolist() == expected.index.tolist()
    assert (got.to_numpy() == expected.to_numpy()).all()


# --------------------------------------------------------------------------------------------
# Business hours
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "workday", "expected"),
    [
        # Friday 20:00 → Monday 10:00: Fri 20–24 (4 h) + Mon 0–10 (10 h).
        ("2026-07-03 20:00", "2026-07-06 10:00", (0, 24), 14.0),
        # Thursday 20:00 → Monday 10:00: 4 + 24 (Friday) + 10.
        ("2026-07-02 20:00", "2026-07-06 10:00", (0, 24), 38.0),
        # Saturday → Sunday: no business time.
        ("2026-07-04 08:00", "2026-07-05 22:00", (0, 24), 0.0),
        # Same weekday.
        ("2026-07-01 08:15", "2026-07-01 09:45", (0, 24), 1.5),
        # Working hours 9–17: Friday 16:00 → Monday 10:00 is 1 h + 1 h.
        ("2026-07-03 16:00", "2026-07-06 10:00", (9, 17), 2.0),
        # Both outside working hours on the same evening.
        ("2026-07-01 18:00", "2026-07-01 23:00", (9, 17), 0.0),
        # End before start: negative.
        ("2026-07-06 10:00", "2026-07-03 20:00", (0, 24), -14.0),
    ],
    ids=[
        "fri-evening-to-mon",
        "thu-evening-to-mon",
        "weekend-only",
        "same-day",
        "working-hours-9-17",
        "after-hours",
        "reversed",
    ],
)
def test_business_hours_hand_cases(start, end, workday, expected) -> None:
    got = funnel.business_hours_between(at(start), at(end), workday_hours=workday)
    assert got.tolist() == [pytest.approx(expected)]


def test_business_hours_skip_holidays_and_give_nan_for_missing() -> None:
    starts = pd.Series([at("2026-07-03 20:00"), pd.NaT])
    ends = pd.Series([at("2026-07-06 10:00"), at("2026-07-06 10:00")])
    got = funnel.business_hours_between(starts, ends, holidays=["2026-07-03"])
    assert got[0] == pytest.approx(10.0)  # Friday a holiday: only Monday's 10 h
    assert np.isnan(got[1])


def brute_force_business_minutes(start, end, h0, h1) -> int:
    """Reference: count each minute [m, m + 1) of [start, end) on Mon–Fri within [h0, h1)."""
    minutes = pd.date_range(start, end, freq="min", inclusive="left")
    hour = minutes.hour + minutes.minute / 60.0
    return int(((minutes.day_of_week < 5) & (hour >= h0) & (hour < h1)).sum())


@settings(max_examples=150, deadline=None)
@given(
    start_min=st.integers(0, 60 * 24 * 21),
    length_min=st.integers(0, 60 * 24 * 10),
    workday=st.sampled_from([(0, 24), (9, 17), (8, 20), (0, 1), (23, 24)]),
)
def test_business_hours_equal_minute_by_minute_count(start_min, length_min, workday) -> None:
    start = at("2026-06-27") + pd.Timedelta(minutes=start_min)  # a Saturday
    end = start + pd.Timedelta(minutes=length_min)
    got = funnel.business_hours_between(start, end, workday_hours=workday)[0]
    # Reference: brute-force minute count. Tolerance: float noise on exact minutes.
    expected = brute_force_business_minutes(start, end, *workday) / 60.0
    assert got == pytest.approx(expected, abs=1e-9)


def test_business_hours_reject_bad_workday() -> None:
    with pytest.raises(ValueError, match="workday_hours"):
        funnel.business_hours_between(at("2026-07-01"), at("2026-07-02"), workday_hours=(17, 9))


# --------------------------------------------------------------------------------------------
# Hand-off SLA
# --------------------------------------------------------------------------------------------

SLA_EVENTS = stage_frame(
    [
        ("s1", "MQL", "2026-07-03 20:00", "r1"),  # Friday evening
        ("s2", "MQL", "2026-07-02 20:00", "r1"),  # Thursday evening
        ("s3", "MQL", "2026-07-02 20:00", "r2"),  # Thursday evening, ENT
        ("s4", "MQL", "2026-07-06 09:00", "r2"),  # never touched, long ago
        ("s5", "MQL", "2026-09-30 22:00"),  # no owner; touched before its MQL only
        ("s6", "MQL", "2026-07-07 09:00", "r1"),
    ]
)
SLA_TOUCHES = touch_frame(
    [
        ("t01", "s1", "2026-07-01 10:00", "webinar", False),  # source channel of s1
        ("t02", "s1", "2026-07-06 10:00", "call", True, "r1"),  # 14 bh: met
        ("t03", "s2", "2026-06-30 10:00", "paid_search", False),
        ("t04", "s2", "2026-07-06 10:00", "call", True, "r1"),  # 38 bh: breached
        ("t05", "s3", "2026-06-30 11:00", "paid_search", False),
        ("t06", "s3", "2026-07-06 10:00", "call", True, "r2"),  # 38 bh, ENT target 48: met
        ("t07", "s4", "2026-07-05 10:00", "events", False),
        ("t08", "s5", "2026-09-29 10:00", "email", True, "r9"),  # before its MQL: no response
        ("t09", "s6", "2026-07-07 09:00", "email", False),
        ("t10", "s6", "2026-07-07 09:00", "call", True, "r1"),  # at the MQL instant: 0 h, met
        ("t11", "s6", "2026-07-07 10:00", "meeting", True, "r3"),
    ]
)
SLA_SEGMENTS = {"s1": "SMB", "s2": "SMB", "s3": "ENT", "s4": "MM", "s5": "SMB", "s6": "MM"}
SLA_REGIONS = {"s1": "EMEA", "s2": "EMEA", "s3": "NA", "s4": "NA", "s5": "NA", "s6": "EMEA"}
SLA_PARAMS = FunnelParams(sla_hours=24, sla_hours_by_segment={"ENT": 48})


def sla_result(con, params=SLA_PARAMS, as_of="2026-10-01 08:00", **kwargs):
    people, accounts = people_accounts(SLA_SEGMENTS, SLA_SEGMENTS, SLA_REGIONS)
    return funnel.measure_sla_compliance(
        ibis.memtable(SLA_EVENTS),
        ibis.memtable(SLA_TOUCHES),
        people,
        accounts,
        Q3,
        params,
        as_of=utc(as_of),
        con=con,
        **kwargs,
    )


def test_sla_compliance_matches_hand_count(con) -> None:
    result = sla_result(con)
    leads = result.leads.set_index("person_id")
    # Reference, by hand (business hours, Mon–Fri 24 h, UTC):
    # s1 Fri 20:00 → Mon 10:00 = 14 h ≤ 24: met. s2 Thu 20:00 → Mon 10:00 = 4 + 24 + 10 = 38
    # > 24: breached. s3 the same 38 h but ENT's target is 48: met. s4 never touched and
    # its target long passed: breached. s5 MQL Wed Sep 30 22:00, as of Thu Oct 1 08:00 is
    # 10 h < 24 and its only sales touch precedes the MQL: open. s6 touched at the MQL
    # instant: 0 h, met. Compliance = met / decided = 3 / 5.
    assert leads.hours_to_first_touch.loc[["s1", "s2", "s3", "s6"]].tolist() == [14, 38, 38, 0]
    assert leads.sla_status.to_dict() == {
        "s1": "met",
        "s2": "breached",
        "s3": "met",
        "s4": "breached",
        "s5": "open",
        "s6": "met",
    }
    assert result.compliance == pytest.approx(3 / 5)
    table = result.summary().set_index(["dimension", "group"])
    # EMEA: s1 met, s2 breached, s6 met → 2 / 3. NA: s3 met, s4 breached, s5 open → 1 / 2.
    assert table.loc[("region", "EMEA"), "compliance"] == pytest.approx(2 / 3)
    assert table.loc[("region", "NA"), ["n_mql", "n_open", "compliance"]].tolist() == [3, 1, 0.5]
    # Rep: the MQL owner, else the first sales touch's user (s5 has none: unassigned).
    assert table.loc[("rep", "r1"), "n_mql"] == 3
    assert table.loc[("rep", "(unassigned)"), "n_mql"] == 1
    # Channel: the first touch's channel (s1 webinar, s2 and s3 paid_search, ...).
    assert table.loc[("channel", "paid_search"), ["n_met", "n_breached"]].tolist() == [1, 1]


def test_sla_in_elapsed_hours_when_business_hours_off(con) -> None:
    params = FunnelParams(sla_hours=24, business_hours=False)
    leads = sla_result(con, params=params).leads.set_index("person_id")
    # Reference: Fri 20:00 → Mon 10:00 is 62 elapsed hours; with a 24 h target: breached.
    assert leads.at["s1", "hours_to_first_touch"] == pytest.approx(62.0)
    assert leads.at["s1", "sla_status"] == "breached"


def test_sla_with_working_hours(con) -> None:
    leads = sla_result(con, workday_hours=(9, 17)).leads.set_index("person_id")
    # Reference: 9–17 working hours. s1 Fri 20:00 → Mon 10:00 = 1 h; s2 Thu 20:00 → Mon
    # 10:00 = 8 (Friday) + 1 = 9 h.
    assert leads.at["s1", "hours_to_first_touch"] == pytest.approx(1.0)
    assert leads.at["s2", "hours_to_first_touch"] == pytest.approx(9.0)


def test_unworked_leads_with_source_channels(con) -> None:
    people, accounts = people_accounts(SLA_SEGMENTS, SLA_SEGMENTS, SLA_REGIONS)
    result = funnel.find_unworked_leads(
        ibis.memtable(SLA_EVENTS),
        ibis.memtable(SLA_TOUCHES),
        people,
        accounts,
        quarter=Q3,
        within_days=30,
        as_of=utc("2026-10-01 08:00"),
        con=con,
    )
    # Reference, by hand: never worked (no sales touch at all): s4 only (source: events).
    # s5's only sales touch precedes its MQL: not never-worked, but nobody answered the MQL,
    # and its 30-day window is still open on Oct 1: counted as window open, not unworked.
    assert result.person_ids == ("s4",)
    table = result.summary().set_index("channel")
    events_row = table.loc["events", ["n_mql", "n_never_worked", "n_unworked_in_window"]]
    assert events_row.tolist() == [1, 1, 1]
    assert table.loc["email", ["n_never_worked", "n_window_open"]].tolist() == [0, 1]
    assert table.loc["all", "share_never_worked"] == pytest.approx(1 / 6)


def test_a_sales_touch_before_the_mql_only_is_unworked_in_the_window(con) -> None:
    people, accounts = people_accounts(SLA_SEGMENTS, SLA_SEGMENTS, SLA_REGIONS)
    result = funnel.find_unworked_leads(
        ibis.memtable(SLA_EVENTS), ibis.memtable(SLA_TOUCHES), people, accounts,
        quarter=Q3, within_days=30, as_of=utc("2026-12-31"), con=con,
    )  # fmt: skip
    # Reference, by hand: as of Dec 31, s5's window (Sep 30 + 30 days) has closed with no
    # response to its MQL; s4 is unworked too. Never worked stays s4 only.
    leads = result.leads.set_index("person_id")
    assert sorted(leads.index[leads.is_unworked_in_window]) == ["s4", "s5"]
    assert result.person_ids == ("s4",)


# --------------------------------------------------------------------------------------------
# Capacity
# --------------------------------------------------------------------------------------------


def capacity_case() -> tuple[pd.DataFrame, pd.DataFrame, dict, dict, pd.DataFrame]:
    """EMEA: s1 owns 40 MQLs, s2 owns 20, 4 unassigned (split 2/2); NA: s3 owns 26.

    Leads are MQLs on weekdays at 09:00 in July–September 2026; EMEA's are worked after
    30 business hours, NA's after 2.
    """
    days = pd.bdate_range("2026-07-01", "2026-09-30", tz="UTC") + pd.Timedelta(hours=9)
    days = days[days.day_of_week < 4]  # Mon–Thu: 30 elapsed hours stay 30 business hours
    owners = ["s1"] * 40 + ["s2"] * 20 + [None] * 4 + ["s3"] * 26
    events, touches, regions = [], [], {}
    for i, owner in enumerate(owners):
        person = f"c{i:03d}"
        mql_at = days[i % len(days)]
        region = "NA" if owner == "s3" else "EMEA"
        regions[person] = region
        delay = pd.Timedelta(hours=2) if region == "NA" else pd.Timedelta(hours=30)
        events.append((person, "MQL", mql_at.isoformat(), owner))
        if region == "NA":  # NA accepts quickly, EMEA never
            events.append((person, "SAL", (mql_at + pd.Timedelta(days=2)).isoformat(), owner))
        touches.append((f"t{i:03d}", person, (mql_at + delay).isoformat(), "call", True, owner))
    users = pd.DataFrame(
        {
            "user_id": ["s1", "s2", "s3", "m1"],
            "team": ["sdr", "sdr", "sdr", "marketing"],
            "region": ["EMEA", "EMEA", "NA", "EMEA"],
            "capacity_leads_per_week": [2.0, 2.0, 10.0, None],
        }
    )
    return stage_frame(events), touch_frame(touches), regions, dict.fromkeys(regions, "SMB"), users


def test_capacity_flags_the_hand_built_over_capacity_region_and_rep(con) -> None:
    events, touches, regions, segments, users = capacity_case()
    people, accounts = people_accounts(regions, segments, regions)
    result = funnel.measure_capacity(
        ibis.memtable(events), ibis.memtable(touches), people, accounts, ibis.memtable(users),
        Q3, PARAMS, as_of=utc("2026-12-31"), con=con,
    )  # fmt: skip
    weeks = 92 / 7  # 2026Q3 has 92 days
    units = result.summary().set_index(["level", "unit"])
    # Reference, by hand: EMEA inflow 64 MQLs / 13.14 weeks = 4.87 > capacity 2 + 2 = 4.
    # NA 26 / 13.14 = 1.98 < 10. s1: 40 + 2 (half the unassigned) = 42 → 3.20 > 2; s2:
    # 20 + 2 = 22 → 1.67 < 2; s3: 1.98 < 10.
    assert units.loc[("region", "EMEA"), "mql_per_week"] == pytest.approx(64 / weeks)
    assert units.loc[("region", "EMEA"), "capacity_per_week"] == pytest.approx(4.0)
    assert units.loc[("rep", "s1"), "n_mql"] == pytest.approx(42)
    assert units.loc[("rep", "s2"), "n_mql"] == pytest.approx(22)
    assert result.over_capacity_regions == ("EMEA",)
    assert result.over_capacity_reps == ("s1",)
    comparison = result.comparison().set_index(["level", "group"])
    over, within = (
        comparison.loc[("region", "over capacity")],
        comparison.loc[("region", "within capacity")],
    )
    assert over.median_hours_to_first_touch == pytest.approx(30.0)
    assert within.median_hours_to_first_touch == pytest.approx(2.0)
    assert (over.sla_compliance, within.sla_compliance) == (0.0, 1.0)
    assert (over.sal_rate, within.sal_rate) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("users", "reason"),
    [
        (None, "no users table"),
        (
            pd.DataFrame({"user_id": pd.Series([], dtype=str), "team": pd.Series([], dtype=str)}),
            "users table is empty",
        ),
        (pd.DataFrame({"user_id": ["m1"], "team": ["marketing"]}), "no SDRs"),
        (pd.DataFrame({"user_id": ["s1"], "team": ["sdr"]}), "no capacity_leads_per_week"),
    ],
    ids=["no-users-table", "empty-users-table", "no-sdrs", "no-capacity-column"],
)
def test_capacity_unknown_says_why_and_does_not_crash(con, users, reason) -> None:
    events, touches, regions, segments, _users = capacity_case()
    people, accounts = people_accounts(regions, segments, regions)
    result = funnel.measure_capacity(
        ibis.memtable(events), ibis.memtable(touches), people, accounts,
        None if users is None else ibis.memtable(users), Q3, PARAMS, con=con,
    )  # fmt: skip
    assert not result.is_known
    assert result.reason.startswith("capacity unknown") and reason in result.reason
    assert result.summary().empty and result.comparison().empty


# --------------------------------------------------------------------------------------------
# Dispositions
# --------------------------------------------------------------------------------------------


def test_disqualification_reasons_by_channel_and_recycled_conversions(con) -> None:
    events = stage_frame(
        [
            ("d1", "MQL", "2026-07-01"),
            ("d1", "Disqualified", "2026-07-05", "u1", "no budget"),
            ("d1", "Disqualified", "2026-07-09", "u1", "competitor"),  # later: not counted
            ("d2", "Disqualified", "2026-08-01", "u1", "no budget"),
            ("d3", "Disqualified", "2026-08-02", "u1", "wrong persona"),
            ("r1", "Recycled", "2026-07-10", "u1", "bad timing"),
            ("r1", "MQL", "2026-08-10"),
            ("r1", "SQL", "2026-08-20"),  # after the recycle: converted
            ("r2", "SQL", "2026-06-20"),  # before the recycle only: not converted
            ("r2", "Recycled", "2026-07-12", "u1", "bad timing"),
            ("r3", "Recycled", "2026-06-01", "u1", "bad timing"),  # Q2: out of scope
        ]
    )
    touches = touch_frame(
        [
            ("t1", "d1", "2026-06-01", "paid_search", False, None, "c1"),
            ("t2", "d2", "2026-06-01", "paid_search", False, None, "c2"),
            ("t3", "d3", "2026-06-01", "events", False, None, "c3"),
            ("t4", "r1", "2026-06-01", "webinar", False, None, "c4"),
        ]
    )
    result = funnel.summarise_disqualifications(
        ibis.memtable(events), ibis.memtable(touches), quarter=Q3, con=con
    )
    by_channel = result.summary().set_index(["disposition", "channel", "reason"])
    # Reference, by hand: paid_search has d1 (first reason: no budget) and d2 (no budget):
    # 2 of 2. events has d3 (wrong persona). Recycled in Q3: r1 (webinar), r2 (no touch).
    assert by_channel.loc[("Disqualified", "paid_search", "no budget"), "n"] == 2
    assert by_channel.loc[("Disqualified", "paid_search", "no budget"), "share"] == 1.0
    assert by_channel.loc[("Disqualified", "events", "wrong persona"), "n"] == 1
    assert by_channel.loc[("Recycled", "(none)", "bad timing"), "n"] == 1
    assert set(result.by("campaign_id").campaign_id) == {"c1", "c2", "c3", "c4", "(none)"}
    wide = result.wide().set_index(["disposition", "channel"])
    assert wide.loc[("Disqualified", "all"), ["n", "no budget", "wrong persona"]].tolist() == [
        3,
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    ]
    assert np.isnan(wide.loc[("Recycled", "all"), "no budget"])  # never a recycle reason
    recycled = result.recycled_conversion().set_index("channel")
    assert recycled.loc["all", ["n_recycled", "n_converted"]].tolist() == [2, 1]
    assert recycled.loc["webinar", "rate"] == 1.0


# --------------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------------


def test_kpis_match_hand_count(con) -> None:
    opps = pd.DataFrame(
        {
            "opp_id": ["o1", "o2", "o3", "o4"],
            "account_id": ["a_p1", "a_p2", "a_p4", "a_p5"],
            "created_at": pd.to_datetime(
                ["2026-07-02", "2026-07-03", "2026-08-01", "2026-05-01"], utc=True
            ),
            "closed_at": pd.to_datetime(
                ["2026-08-01", "2026-09-02", None, "2026-07-31"], utc=True
            ),
            "stage": ["Closed Won", "Closed Lost", "Proposal", "Closed Won"],
            "is_won": pd.array([True, False, None, True], dtype="boolean"),
            "amount": [10_000.0, 5_000.0, 20_000.0, 30_000.0],
        }
    )
    touches = touch_frame(
        [
            ("t1", "p1", "2026-06-01", "webinar", False),  # o1: marketing-sourced
            ("t2", "p2", "2026-06-01", "call", True, "u1"),  # o2: sales-sourced
            ("t3", "p4", "2026-09-01", "email", False),  # after o3's creation: unattributed
        ]
    )
    people, accounts = people_accounts([f"p{i}" for i in range(1, 9)])
    result = funnel.compute_kpis(
        ibis.memtable(COHORT_EVENTS), ibis.memtable(touches), ibis.memtable(opps), people,
        accounts, Q3, PARAMS, n_previous=1, as_of=utc("2026-12-31"), con=con,
    )  # fmt: skip
    kpis = result.summary().set_index(["kpi", "quarter"]).value
    # Reference, by hand for 2026Q3: pipeline created o1 + o2 + o3 = 35,000 (marketing o1
    # 10,000; sales o2 5,000; o3 unattributed); closed in Q3: o1 won, o2 lost, o4 won →
    # revenue 40,000, win rate 2 / 3, average deal 20,000; cycles o1 30 d, o4 91 d: median
    # 60.5 d; CLV 20,000 × 0.7 / 0.2 = 70,000. Cohort KPIs from the hand count above.
    assert kpis[("Pipeline created", "2026Q3")] == 35_000
    assert kpis[("Marketing-sourced pipeline", "2026Q3")] == 10_000
    assert kpis[("Sales-sourced pipeline", "2026Q3")] == 5_000
    assert kpis[("Revenue (won)", "2026Q3")] == 40_000
    assert kpis[("Win rate", "2026Q3")] == pytest.approx(2 / 3)
    assert kpis[("Average deal size", "2026Q3")] == pytest.approx(20_000)
    assert kpis[("Sales cycle (median days, won)", "2026Q3")] == pytest.approx(60.5)
    assert kpis[("Customer lifetime value (estimate)", "2026Q3")] == pytest.approx(70_000)
    assert kpis[("MQLs", "2026Q3")] == 7 and kpis[("MQLs", "2026Q2")] == 1
    assert kpis[("MQL→SAL conversion", "2026Q3")] == pytest.approx(4 / 7)
    assert kpis[("Pipeline created", "2026Q2")] == 30_000
    frame = result.summary()
    assert list(frame.columns[:5]) == ["kpi", "quarter", "value", "unit", "source"]
    assert set(frame.unit) <= {"count", "fraction", "hours", "days", "USD"}
    assert (frame.source == "funnel_sla#tbl-funnel-kpis").all()
    changes = result.changes().set_index("kpi")
    assert changes.at["Pipeline created", "change"] == pytest.approx(35_000 / 30_000 - 1)


def test_kpis_refuse_impossible_assumptions(con) -> None:
    with pytest.raises(ValueError, match="annual_churn_rate"):
        funnel.compute_kpis(
            *(ibis.memtable(COHORT_EVENTS),) * 5, Q3, PARAMS, annual_churn_rate=0.0, con=con
        )


# --------------------------------------------------------------------------------------------
# Demo generator's planted truth (skipped until alignment.demo and alignment.store land)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> object:
    demo = pytest.importorskip("alignment.demo", reason="alignment.demo is not written yet")
    out = tmp_path_factory.mktemp("funnel-demo")
    demo.generate_demo(out, seed=7, scale="small")
    return out


@pytest.fixture(scope="session")
def demo_data(demo_dir) -> object:
    store = pytest.importorskip("alignment.store", reason="alignment.store is not written yet")
    return store.open_data(demo_dir)


def demo_truth(demo_dir) -> dict:
    return json.loads((demo_dir / "ground_truth.json").read_text())


def demo_quarter(demo_dir) -> Quarter:
    return Quarter.parse(demo_truth(demo_dir)["quarters"][-1])


def test_demo_over_capacity_regions_are_detected_exactly(demo_dir, demo_data) -> None:
    # Reference: the regions the generator planted over capacity (ground_truth.json).
    truth = demo_truth(demo_dir)["funnel"]["over_capacity_regions"]
    d = demo_data
    result = funnel.measure_capacity(
        d.table("stage_events"), d.table("touchpoints"), d.table("people"), d.table("accounts"),
        d.table("users") if d.has("users") else None, demo_quarter(demo_dir), PARAMS,
    )  # fmt: skip
    assert result.is_known, result.reason
    assert set(result.over_capacity_regions) == set(truth)
    # ... and the signal the report draws from it: leads of the over-capacity region wait
    # longer, miss the SLA more and are accepted less often than the others (the generator
    # plants slow response there; the margins below are far outside sampling noise).
    by_group = result.comparison().query("level == 'region'").set_index("group")
    over, within = by_group.loc["over capacity"], by_group.loc["within capacity"]
    assert over.median_hours_to_first_touch > 3 * within.median_hours_to_first_touch
    assert over.sla_compliance < within.sla_compliance - 0.3
    assert over.sal_rate < within.sal_rate


def test_demo_unworked_leads_are_detected_exactly(demo_dir, demo_data) -> None:
    # Reference: the MQLs the generator left without any sales touch (ground_truth.json).
    truth = demo_truth(demo_dir)["funnel"]["unworked_leads"]
    d = demo_data
    result = funnel.find_unworked_leads(
        d.table("stage_events"), d.table("touchpoints"), d.table("people"), d.table("accounts")
    )
    assert set(result.person_ids) == set(truth)


def test_sla_on_tables_from_store_equals_memtables(tmp_path, con) -> None:
    store = pytest.importorskip("alignment.store", reason="alignment.store is not written yet")
    # Reference: the same hand-built case through ibis.memtable (test_sla_compliance_...).
    expected = sla_result(con).leads.set_index("person_id")
    ids = list(SLA_SEGMENTS)
    pd.DataFrame(
        {
            "account_id": [f"a_{p}" for p in ids],
            "segment": [SLA_SEGMENTS[p] for p in ids],
            "region": [SLA_REGIONS[p] for p in ids],
            "created_at": "2026-01-01T00:00:00Z",
        }
    ).to_csv(tmp_path / "accounts.csv", index=False)
    pd.DataFrame(
        {"person_id": ids, "account_id": [f"a_{p}" for p in ids], "created_at": "2026-01-01"}
    ).to_csv(tmp_path / "people.csv", index=False)
    SLA_TOUCHES.to_csv(tmp_path / "touchpoints.csv", index=False)
    SLA_EVENTS.to_csv(tmp_path / "stage_events.csv", index=False)
    data = store.open_data(tmp_path)
    result = funnel.measure_sla_compliance(
        data.table("stage_events"), data.table("touchpoints"), data.table("people"),
        data.table("accounts"), Q3, SLA_PARAMS, as_of=utc("2026-10-01 08:00"),
    )  # fmt: skip
    got = result.leads.set_index("person_id")
    assert got.sla_status.to_dict() == expected.sla_status.to_dict()
    assert_allclose(got.hours_to_first_touch, expected.hours_to_first_touch)


def test_funnel_figures_have_titles_and_labelled_axes(con) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alignment import plots

    events, touches, regions, segments, users = capacity_case()
    people, accounts = people_accounts(regions, segments, regions)
    tables = (ibis.memtable(events), ibis.memtable(touches), people, accounts)
    capacity = funnel.measure_capacity(*tables, ibis.memtable(users), Q3, PARAMS, con=con)
    sla = funnel.measure_sla_compliance(*tables, Q3, PARAMS, con=con)
    cohorts = funnel.measure_cohort_conversion(tables[0], [Q3.previous(), Q3], PARAMS, con=con)
    figures = [
        plots.plot_cohort_funnel(cohorts.summary()),
        plots.plot_hours_to_first_touch(sla.leads, sla_hours=PARAMS.sla_hours),
        plots.plot_capacity_vs_inflow(capacity.summary()),
    ]
    for fig in figures:
        assert fig.axes[0].get_title() or fig._suptitle is not None
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
        plt.close(fig)


def test_demo_disqualification_reasons_by_channel_match_planted_shares(
    demo_dir, demo_data
) -> None:
    # Reference: ground_truth.json's disqualification shares (each disqualified lead once, by
    # its lead-source channel = first touch). Tolerance: float noise.
    truth = demo_truth(demo_dir)["funnel"]
    d = demo_data
    result = funnel.summarise_disqualifications(d.table("stage_events"), d.table("touchpoints"))
    overall = result.reasons().query("disposition == 'Disqualified'").set_index("reason").share
    assert overall.to_dict() == pytest.approx(truth["disqualification_reasons"], rel=1e-12)
    by_channel = result.by("channel").query("disposition == 'Disqualified'")
    for channel, shares in truth["disqualification_reasons_by_channel"].items():
        got = by_channel[by_channel.channel == channel].set_index("reason").share.to_dict()
        assert got == pytest.approx(shares, rel=1e-12), channel


def test_kpis_equal_the_numbers_of_their_own_tables(con) -> None:
    # Reference: the study functions themselves, each with its default cut-off (cohorts: the
    # last stage event; SLA: the last stage event or touch, here a later touch on Oct 20).
    late = touch_frame([("t99", "s1", "2026-10-20 10:00", "email", False)])
    touches = ibis.memtable(pd.concat([SLA_TOUCHES, late], ignore_index=True))
    events = ibis.memtable(SLA_EVENTS)
    people, accounts = people_accounts(SLA_SEGMENTS, SLA_SEGMENTS, SLA_REGIONS)
    opps = pd.DataFrame(
        {
            "opp_id": ["o1"],
            "account_id": ["a_s1"],
            "created_at": pd.to_datetime(["2026-08-01"], utc=True),
            "closed_at": pd.to_datetime([None], utc=True),
            "is_won": pd.array([None], dtype="boolean"),
            "amount": [1000.0],
        }
    )
    kpis = funnel.compute_kpis(
        events, touches, ibis.memtable(opps), people, accounts, Q3, SLA_PARAMS,
        n_previous=0, con=con,
    )  # fmt: skip
    values = kpis.summary().set_index("kpi").value
    cohorts = funnel.measure_cohort_conversion(events, Q3, SLA_PARAMS, con=con)
    sla = funnel.measure_sla_compliance(events, touches, people, accounts, Q3, SLA_PARAMS, con=con)
    assert cohorts.as_of < sla.as_of  # the two cut-offs differ here
    assert values["MQL→SAL conversion"] == cohorts.rate(Q3, "SAL")
    assert values["SLA compliance"] == sla.compliance
    assert values["Median hours to first sales touch"] == sla.summary(by=()).median_hours.iloc[0]
    assert np.isnan(values["Win rate"])  # nothing closed in the quarter
