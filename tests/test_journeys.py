"""alignment.journeys: Ibis journeys on DuckDB against hand counts and a pandas reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from alignment import journeys

START = datetime(2026, 7, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def con() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


def touches_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["touch_id", "person_id", "ts", "channel", "is_sales_touch"]
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


PEOPLE = pd.DataFrame({"person_id": ["p1", "p2", "p3"], "account_id": ["a1", "a1", "a2"]})
NO_OPPS = pd.DataFrame(
    {
        "opp_id": pd.Series([], dtype=str),
        "account_id": pd.Series([], dtype=str),
        "created_at": pd.Series([], dtype="datetime64[us, UTC]"),
        "closed_at": pd.Series([], dtype="datetime64[us, UTC]"),
        "is_won": pd.Series([], dtype=bool),
        "amount": pd.Series([], dtype=float),
    }
)


def sql_events(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": pd.Series([p for p, _ in rows], dtype=str),
            "stage": pd.Series(["SQL"] * len(rows), dtype=str),
            "entered_at": pd.Series([at(t) for _, t in rows], dtype="datetime64[us, UTC]"),
        }
    )


def paths_of(con, touches, stages, *, unit="person", lookback_days=90, opps=NO_OPPS,
             split_mixed_channels=True):
    tw = journeys.touches_with_account(ibis.memtable(touches), ibis.memtable(PEOPLE))
    conv = journeys.conversion_events(
        ibis.memtable(stages), ibis.memtable(opps), unit=unit, people=ibis.memtable(PEOPLE)
    )
    built = journeys.build_journeys(
        tw, conv, start_at=START, end_at=END, unit=unit, lookback_days=lookback_days,
        split_mixed_channels=split_mixed_channels,
    )
    table = con.execute(journeys.aggregate_paths(built))
    return {row.path: (row.conversions, row.nulls) for row in table.itertuples()}


def test_path_is_ordered_by_time_then_touch_id_and_cut_at_conversion(con) -> None:
    touches = touches_frame(
        [
            ("t2", "p1", "2026-07-03", "webinar", False),
            ("t1", "p1", "2026-07-03", "email", False),  # same instant: t1 sorts first
            ("t0", "p1", "2026-07-02", "paid_search", False),
            ("t9", "p1", "2026-07-11", "events", False),  # after the conversion: not in the path
        ]
    )
    assert paths_of(con, touches, sql_events([("p1", "2026-07-10")])) == {
        "paid_search>email>webinar": (1, 0)
    }


def test_touch_at_the_lookback_boundary_counts_and_one_before_does_not(con) -> None:
    touches = touches_frame(
        [
            ("t1", "p1", "2026-06-10 00:00:00", "display", False),  # exactly 30 days before
            ("t0", "p1", "2026-06-09 23:59:59", "email", False),  # one second earlier
            ("t2", "p1", "2026-07-10 00:00:00", "webinar", False),  # at the conversion instant
        ]
    )
    paths = paths_of(con, touches, sql_events([("p1", "2026-07-10")]), lookback_days=30)
    assert paths == {"display>webinar": (1, 0)}


def test_unit_converted_before_the_window_is_left_out(con) -> None:
    touches = touches_frame([("t1", "p1", "2026-07-05", "email", False)])
    assert paths_of(con, touches, sql_events([("p1", "2026-06-20")])) == {}


def test_null_journey_ends_at_its_last_touch_in_the_window(con) -> None:
    touches = touches_frame(
        [
            ("t1", "p2", "2026-04-01", "display", False),  # 95 days before the last touch
            ("t2", "p2", "2026-05-01", "email", False),
            ("t3", "p2", "2026-07-05", "webinar", False),
            ("t4", "p2", "2026-10-02", "events", False),  # after the window
        ]
    )
    assert paths_of(con, touches, sql_events([])) == {"email>webinar": (0, 1)}


def test_account_journey_merges_its_peoples_touches(con) -> None:
    touches = touches_frame(
        [
            ("t1", "p1", "2026-07-02", "email", False),
            ("t2", "p2", "2026-07-03", "sales_call", True),
            ("t3", "p1", "2026-07-04", "webinar", False),
            ("t4", "p3", "2026-07-04", "display", False),
        ]
    )
    paths = paths_of(con, touches, sql_events([("p2", "2026-07-20")]), unit="account")
    assert paths == {"email>sales_call>webinar": (1, 0), "display": (0, 1)}


def test_separator_inside_a_channel_name_is_replaced(con) -> None:
    touches = touches_frame([("t1", "p1", "2026-07-02", "paid > search", False)])
    assert paths_of(con, touches, sql_events([("p1", "2026-07-03")])) == {"paid _ search": (1, 0)}


def test_person_revenue_splits_a_won_deal_among_its_people(con) -> None:
    stages = sql_events([("p1", "2026-07-10"), ("p2", "2026-07-12")])
    opps = pd.DataFrame(
        {
            "opp_id": ["o1", "o0"],
            "account_id": ["a1", "a1"],
            "created_at": [at("2026-07-15"), at("2026-01-01")],  # o0 predates both SQLs
            "closed_at": [at("2026-08-15"), at("2026-02-01")],
            "is_won": [True, True],
            "amount": [900.0, 5000.0],
        }
    )
    members = pd.DataFrame(
        {"opp_id": ["o1", "o1", "o1", "o0"], "person_id": ["p1", "p2", "p3", "p1"], "role": None}
    )
    conv = journeys.conversion_events(
        ibis.memtable(stages),
        ibis.memtable(opps),
        opportunity_people=ibis.memtable(members),
    )
    values = con.execute(conv).set_index("unit_id")["value"].to_dict()
    # Reference: 900 split three ways (p3 never converted); o0 closed before the SQLs.
    assert values == {"p1": pytest.approx(300.0), "p2": pytest.approx(300.0)}


@pytest.mark.parametrize("event", ["Opportunity", "won"])
def test_account_conversion_is_its_first_opportunity_or_first_win(con, event: str) -> None:
    opps = pd.DataFrame(
        {
            "opp_id": ["o1", "o2"],
            "account_id": ["a1", "a1"],
            "created_at": [at("2026-07-15"), at("2026-07-01")],
            "closed_at": [at("2026-08-15"), at("2026-09-01")],
            "is_won": [True, False],
            "amount": [900.0, 100.0],
        }
    )
    conv = journeys.conversion_events(
        ibis.memtable(sql_events([])), ibis.memtable(opps), event=event, unit="account"
    )
    row = con.execute(conv).iloc[0]
    expected = {"Opportunity": at("2026-07-01"), "won": at("2026-08-15")}[event]
    assert row["converted_at"] == expected
    # Reference: only o1 is won, created after 2026-07-01; for "won", created before closing
    # (2026-07-15 < 2026-08-15) so it does not count as revenue after the conversion.
    assert row["value"] == {"Opportunity": 900.0, "won": 0.0}[event]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unit": "team"}, "unit must be one of person, account"),
        ({"lookback_days": 0}, "lookback_days must be positive"),
        ({"channel_col": "colour"}, "channel_col 'colour' is not a touchpoints column"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, message: str) -> None:
    touches = ibis.memtable(touches_frame([("t1", "p1", "2026-07-02", "email", False)]))
    conv = journeys.conversion_events(ibis.memtable(sql_events([])), ibis.memtable(NO_OPPS))
    with pytest.raises(ValueError, match=message):
        journeys.build_journeys(touches, conv, start_at=START, end_at=END, **kwargs)


def reference_paths(touches: pd.DataFrame, firsts: pd.Series, lookback_days: int,
                    split: bool = False) -> pd.DataFrame:
    """Plain pandas version of the module's definitions (person units).

    ``split``: a sales touch of a channel with a marketing touch somewhere in the journeys
    is named ``"<channel> (sales)"``.
    """
    journeys_ = []
    lookback = timedelta(days=lookback_days)
    start, end = pd.Timestamp(START), pd.Timestamp(END)
    for person, group in touches.sort_values(["ts", "touch_id"]).groupby("person_id"):
        converted_at = firsts.get(person)
        if converted_at is not None and converted_at < start:
            continue
        if converted_at is not None and converted_at < end:
            reference, converted = converted_at, True
        else:
            in_window = group[(group.ts >= start) & (group.ts < end)]
            if in_window.empty:
                continue
            reference, converted = in_window.ts.max(), False
        steps = group[(group.ts <= reference) & (group.ts >= reference - lookback)]
        if not steps.empty:
            journeys_.append((steps, converted))
    touched = pd.concat([steps for steps, _ in journeys_]) if journeys_ else touches.iloc[:0]
    with_marketing = set(touched.channel[~touched.is_sales_touch.astype(bool)])
    rows = []
    for steps, converted in journeys_:
        names = [
            f"{c} (sales)" if split and sales and c in with_marketing else c
            for c, sales in zip(steps.channel, steps.is_sales_touch.astype(bool), strict=True)
        ]
        rows.append((">".join(names), converted))
    frame = pd.DataFrame(rows, columns=["path", "converted"])
    return (
        frame.groupby("path")
        .agg(conversions=("converted", "sum"), nulls=("converted", lambda s: (~s).sum()))
        .astype("int64")
        .sort_index()
    )


@pytest.mark.parametrize("split", [True, False], ids=["split-mixed", "by-channel"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paths_match_a_pandas_reference_on_random_data(con, seed: int, split: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    people = [f"p{i}" for i in range(60)]
    seconds = rng.integers(0, 200 * 86_400, n)
    touches = pd.DataFrame(
        {
            "touch_id": [f"t{i:04d}" for i in range(n)],
            "person_id": rng.choice(people, n),
            # whole days only for some rows, so ties on ts occur and touch_id must break them
            "ts": pd.Timestamp("2026-04-01", tz="UTC")
            + pd.to_timedelta(
                np.where(rng.random(n) < 0.3, seconds // 86_400 * 86_400, seconds), unit="s"
            ),
            "channel": rng.choice(["email", "webinar", "display", "events", "sales_call"], n),
        }
    )
    # sales_call is all sales', email mixed (a fifth of its touches are reps'), others marketing's
    touches["is_sales_touch"] = (touches.channel == "sales_call") | (
        (touches.channel == "email") & (rng.random(n) < 0.2)
    )
    converters = rng.choice(people, 25, replace=False)
    sql_at = pd.Timestamp("2026-05-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 150 * 86_400, 25), unit="s"
    )
    stages = pd.DataFrame({"person_id": converters, "stage": "SQL", "entered_at": sql_at})
    expected = reference_paths(touches, stages.set_index("person_id")["entered_at"], 45,
                               split=split)
    assert expected.index.str.contains("email (sales)", regex=False).any() == split
    got = (
        pd.DataFrame(
            [
                (p, c, n_)
                for p, (c, n_) in paths_of(con, touches, stages, lookback_days=45,
                                           split_mixed_channels=split).items()
            ],
            columns=["path", "conversions", "nulls"],
        )
        .set_index("path")
        .astype("int64")
        .sort_index()
    )
    pd.testing.assert_frame_equal(got, expected)


def test_stage_timestamps_with_microsecond_scale_still_give_null_journeys(con) -> None:
    # Parquet views type timestamps as timestamp('UTC', 6); the union of converting and null
    # journeys must not refuse them against the null journeys' timestamp type.
    touches = touches_frame(
        [("t1", "p1", "2026-07-02", "email", False), ("t2", "p2", "2026-07-03", "display", False)]
    )
    stages = ibis.memtable(sql_events([("p1", "2026-07-10")]))
    stages = stages.mutate(entered_at=stages.entered_at.cast("timestamp('UTC', 6)"))
    tw = journeys.touches_with_account(ibis.memtable(touches), ibis.memtable(PEOPLE))
    conv = journeys.conversion_events(stages, ibis.memtable(NO_OPPS))
    built = journeys.build_journeys(tw, conv, start_at=START, end_at=END)
    table = con.execute(journeys.aggregate_paths(built))
    assert {r.path: (r.conversions, r.nulls) for r in table.itertuples()} == {
        "email": (1, 0),
        "display": (0, 1),
    }


MIXED_TOUCHES = touches_frame(
    [
        ("t1", "p1", "2026-07-02", "email", False),
        ("t2", "p1", "2026-07-03", "sales_call", True),
        ("t3", "p2", "2026-07-04", "sales_call", True),
        ("t4", "p2", "2026-07-05", "partner", True),  # one of two partner touches: a tie
        ("t5", "p3", "2026-07-06", "partner", False),
        ("t6", "p3", "2026-07-07", "meeting", None),  # null flag counts as marketing's
    ]
)


def summarise_mixed(con, **kwargs) -> pd.DataFrame:
    tw = journeys.touches_with_account(ibis.memtable(MIXED_TOUCHES), ibis.memtable(PEOPLE))
    conv = journeys.conversion_events(ibis.memtable(sql_events([])), ibis.memtable(NO_OPPS))
    built = journeys.build_journeys(tw, conv, start_at=START, end_at=END, **kwargs)
    return con.execute(journeys.summarise_channels(built)).set_index("channel")


def test_summarise_channels_marks_channels_most_of_whose_touches_are_sales(con) -> None:
    got = summarise_mixed(con, split_mixed_channels=False)
    # Reference: hand count; a sales channel needs more than half of its touches marked.
    assert got["n_touches"].to_dict() == {"email": 1, "meeting": 1, "partner": 2, "sales_call": 2}
    assert got["n_sales_touches"].to_dict() == {
        "email": 0, "meeting": 0, "partner": 1, "sales_call": 2
    }
    assert got.index[got["is_sales_channel"]].tolist() == ["sales_call"]
    assert (got["base_channel"] == got.index).all()


def test_sales_touches_of_a_mixed_channel_get_their_own_label_by_default(con) -> None:
    got = summarise_mixed(con)
    # Reference: hand count. Only partner has touches of both teams (t4 sales', t5
    # marketing's), so t4 becomes "partner (sales)"; sales_call (all sales') and email,
    # meeting (all marketing's) keep their names. Every label is then one team's.
    assert got["n_touches"].to_dict() == {
        "email": 1, "meeting": 1, "partner": 1, "partner (sales)": 1, "sales_call": 2
    }
    assert got["base_channel"].to_dict() == {
        "email": "email", "meeting": "meeting", "partner": "partner",
        "partner (sales)": "partner", "sales_call": "sales_call",
    }
    assert got.index[got["is_sales_channel"]].tolist() == ["partner (sales)", "sales_call"]
    assert set(got["n_sales_touches"] / got["n_touches"]) == {0.0, 1.0}


def test_split_labels_reach_the_paths_only_for_mixed_channels(con) -> None:
    touches = touches_frame(
        [
            ("t1", "p1", "2026-07-02", "email", False),
            ("t2", "p1", "2026-07-04", "email", True),  # a rep's email: email is mixed
            ("t3", "p1", "2026-07-05", "sales_call", True),
            ("t4", "p3", "2026-07-03", "email", False),
        ]
    )
    stages = sql_events([("p1", "2026-07-10")])
    tw = journeys.touches_with_account(ibis.memtable(touches), ibis.memtable(PEOPLE))
    conv = journeys.conversion_events(ibis.memtable(stages), ibis.memtable(NO_OPPS))

    def paths(split: bool) -> dict[str, tuple[int, int]]:
        built = journeys.build_journeys(tw, conv, start_at=START, end_at=END,
                                        split_mixed_channels=split)
        table = con.execute(journeys.aggregate_paths(built))
        return {r.path: (r.conversions, r.nulls) for r in table.itertuples()}

    # Reference: p1 converts on email > email > sales_call, p3 is a null on email; only the
    # second email is a sales touch in a channel with marketing touches.
    assert paths(True) == {"email>email (sales)>sales_call": (1, 0), "email": (0, 1)}
    assert paths(False) == {"email>email>sales_call": (1, 0), "email": (0, 1)}
