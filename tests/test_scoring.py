"""alignment.scoring: as-of features, the lead score, its evaluation and the capacity threshold.

References: scipy's Mann-Whitney U for the AUC, statsmodels' GLM for the unpenalised fit,
data simulated from a known logistic model for coefficients and calibration, a plain pandas
count for the Ibis features, a per-lead queue simulation for the SLA rule, and the demo
generator's planted truth when ``alignment.demo`` exists.
"""

from __future__ import annotations

import importlib.util
import json
import math
from datetime import UTC, datetime

import ibis
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.stats import mannwhitneyu
from statsmodels.stats.proportion import proportion_confint

from alignment import scoring


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def utc(values) -> pd.Series:
    return pd.Series(
        pd.to_datetime(values, utc=True, format="ISO8601"), dtype="datetime64[us, UTC]"
    )


@pytest.fixture
def con() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


# ---------------------------------------------------------------------------------------------
# Tiny CRM tables, built per test
# ---------------------------------------------------------------------------------------------

ACCOUNTS = pd.DataFrame(
    {
        "account_id": ["a1", "a2"],
        "segment": ["ENT", "SMB"],
        "region": ["EMEA", "NA"],
        "industry": ["software", None],
        "created_at": utc(["2025-01-01", "2025-01-01"]),
    }
)
PEOPLE = pd.DataFrame(
    {
        "person_id": ["p1", "p2", "p3"],
        "account_id": ["a1", "a1", "a2"],
        "persona": ["CFO", None, "IT"],
        "created_at": utc(["2026-01-01"] * 3),
    }
)


def touches(rows: list[tuple]) -> pd.DataFrame:
    """(touch_id, person_id, ts, channel, touch_type, is_sales_touch) rows."""
    frame = pd.DataFrame(
        rows, columns=["touch_id", "person_id", "ts", "channel", "touch_type", "is_sales_touch"]
    )
    frame["ts"] = utc(frame["ts"])
    return frame


def stages(rows: list[tuple]) -> pd.DataFrame:
    """(person_id, stage, entered_at[, reason]) rows."""
    rows = [r if len(r) == 4 else (*r, None) for r in rows]
    frame = pd.DataFrame(rows, columns=["person_id", "stage", "entered_at", "reason"])
    frame["entered_at"] = utc(frame["entered_at"])
    frame["reason"] = frame["reason"].astype("str").where(frame["reason"].notna(), None)
    return frame


def features(con, touch_rows, stage_rows, *, asset_events=None, **kwargs) -> pd.DataFrame:
    kwargs.setdefault("channels", ["email", "webinar"])
    kwargs.setdefault("touch_types", ["email_open", "webinar_attend"])
    expr = scoring.build_lead_features(
        people=ibis.memtable(PEOPLE),
        accounts=ibis.memtable(ACCOUNTS),
        touchpoints=ibis.memtable(touches(touch_rows)),
        stage_events=ibis.memtable(stages(stage_rows)),
        asset_events=None if asset_events is None else ibis.memtable(asset_events),
        **kwargs,
    )
    return con.execute(expr).set_index("person_id")


MQL_AT = "2026-02-10 12:00:00"
STAGES_P1_MQL = [("p1", "Lead", "2026-01-20"), ("p1", "MQL", MQL_AT)]


# ---------------------------------------------------------------------------------------------
# Leakage: events at or after the scoring instant never count
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "counted"),
    [
        pytest.param("2026-02-10 11:59:59", 1, id="one-second-before-counts"),
        pytest.param(MQL_AT, 0, id="at-the-mql-instant-excluded"),
        pytest.param("2026-02-10 12:00:01", 0, id="one-second-after-excluded"),
    ],
)
def test_touch_counts_only_strictly_before_the_mql_instant(con, ts, counted) -> None:
    # Reference: the leakage rule of the module docstring (strictly before), by hand.
    leads = features(con, [("t1", "p1", ts, "email", "email_open", False)], STAGES_P1_MQL)
    p1 = leads.loc["p1"]
    assert p1["scored_at"] == at(MQL_AT)
    assert (p1["n_touches"], p1["n_channel_email"], p1["n_type_email_open"]) == (counted,) * 3
    assert p1["n_people_engaged"] == counted


@pytest.mark.parametrize(
    ("ts", "counted"),
    [
        pytest.param("2026-02-10 11:59:59", 1, id="one-second-before-counts"),
        pytest.param(MQL_AT, 0, id="at-the-mql-instant-excluded"),
        pytest.param("2026-02-10 12:00:01", 0, id="one-second-after-excluded"),
    ],
)
def test_asset_views_only_strictly_before_the_mql_instant(con, ts, counted) -> None:
    views = pd.DataFrame(
        {
            "event_id": ["e1", "e2"],
            "asset_id": ["x", "x"],
            "ts": utc([ts, ts]),
            "event_type": ["external_view", "share"],  # a rep's share is not the lead's view
            "person_id": ["p1", "p1"],
        }
    )
    leads = features(con, [], STAGES_P1_MQL, asset_events=views)
    assert leads.loc["p1", "n_asset_views"] == counted


def test_days_since_last_touch_is_measured_to_the_scoring_instant(con) -> None:
    rows = [
        ("t1", "p1", "2026-02-03 12:00:00", "email", "email_open", False),  # 7 days before MQL
        ("t2", "p1", "2026-02-11", "webinar", "webinar_attend", False),  # after: ignored
    ]
    leads = features(con, rows, STAGES_P1_MQL)
    assert leads.loc["p1", "days_since_last_touch"] == pytest.approx(7.0)


def test_sales_touches_and_touches_beyond_the_lookback_are_not_features(con) -> None:
    rows = [
        ("t1", "p1", "2026-02-09", "sdr", "call", True),  # a sales touch
        ("t2", "p1", "2025-11-01", "email", "email_open", False),  # 101 days before the MQL
        ("t3", "p1", "2026-01-15", "email", "email_open", False),
    ]
    leads = features(con, rows, STAGES_P1_MQL, lookback_days=90)
    assert leads.loc["p1", "n_touches"] == 1


def test_lead_without_mql_is_scored_at_the_horizon(con) -> None:
    leads = features(con, [], [("p2", "Lead", "2026-01-25")], horizon_days=30)
    p2 = leads.loc["p2"]
    assert not p2["current_rule"]
    assert pd.isna(p2["mql_at"])
    assert p2["scored_at"] == at("2026-02-24")


def test_mql_after_the_horizon_is_not_the_rule_firing(con) -> None:
    leads = features(
        con, [], [("p2", "Lead", "2026-01-01"), ("p2", "MQL", "2026-03-01")], horizon_days=30
    )
    p2 = leads.loc["p2"]
    assert not p2["current_rule"]
    assert p2["mql_at"] == at("2026-03-01")
    assert p2["scored_at"] == at("2026-01-31")


def test_people_without_lead_or_mql_events_are_not_leads(con) -> None:
    leads = features(con, [], STAGES_P1_MQL)
    assert list(leads.index) == ["p1"]


def test_every_person_is_a_lead_when_the_export_has_no_lead_events(con) -> None:
    leads = features(con, [], [("p1", "MQL", MQL_AT)])
    assert sorted(leads.index) == ["p1", "p2", "p3"]
    assert leads.loc["p2", "lead_at"] == at("2026-01-01")  # people.created_at


@pytest.mark.parametrize(
    ("sql_at", "converted", "before"),
    [
        pytest.param("2026-05-10 12:00:00", True, False, id="sql-at-window-end-converts"),
        pytest.param("2026-05-10 12:00:01", False, False, id="sql-after-window-does-not"),
        pytest.param("2026-02-10 12:00:00", True, False, id="sql-at-the-mql-instant-converts"),
        pytest.param("2026-02-01", False, True, id="sql-before-scoring-is-flagged"),
    ],
)
def test_outcome_window_is_closed_interval_after_scoring(con, sql_at, converted, before) -> None:
    # Reference: [scored_at, scored_at + 89 days] by hand (2026-02-10 12:00 + 89 d = 05-10 12:00).
    rows = [*STAGES_P1_MQL, ("p1", "SQL", sql_at), ("p3", "Lead", "2026-09-01")]
    leads = features(con, [], rows, window_days=89)
    assert leads.loc["p1", "converted"] == converted
    assert leads.loc["p1", "converted_before_scoring"] == before


def test_window_closure_against_the_last_event_in_the_data(con) -> None:
    rows = [*STAGES_P1_MQL, ("p3", "Lead", "2026-05-11")]  # the export's last event
    leads = features(con, [], rows, window_days=90, horizon_days=30)
    assert bool(leads.loc["p1", "is_window_closed"]) is False  # closes 2026-05-11 12:00
    leads = features(con, [], rows, window_days=89, horizon_days=30)
    assert bool(leads.loc["p1", "is_window_closed"]) is True


def test_later_stage_counts_as_reaching_sql_and_disqualification_reason_is_kept(con) -> None:
    rows = [
        *STAGES_P1_MQL,
        ("p1", "Opportunity", "2026-03-01"),
        ("p2", "Lead", "2026-01-25"),
        ("p2", "MQL", "2026-01-26"),
        ("p2", "Disqualified", "2026-01-28", "no budget"),
        ("p2", "Disqualified", "2026-02-28", "wrong persona"),
    ]
    leads = features(con, [], rows)
    assert leads.loc["p1", "converted"]
    assert leads.loc["p2", "disqualified_reason"] == "no budget"
    assert not leads.loc["p2", "converted"]


def random_crm(seed: int, n_people: int = 40, n_touches: int = 400):
    rng = np.random.default_rng(seed)
    people = pd.DataFrame(
        {
            "person_id": [f"p{i}" for i in range(n_people)],
            "account_id": [f"a{i % 7}" for i in range(n_people)],
            "persona": rng.choice(["CFO", "IT", None], n_people),
            "created_at": utc(["2025-10-01"] * n_people),
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(7)],
            "segment": rng.choice(["SMB", "MM", "ENT"], 7),
            "region": rng.choice(["EMEA", "NA"], 7),
            "employees": rng.integers(5, 5000, 7).astype(float),
        }
    )
    start = at("2026-01-01")
    minutes = rng.integers(0, 200 * 24 * 60, n_touches)
    touch = pd.DataFrame(
        {
            "touch_id": [f"t{i:04d}" for i in range(n_touches)],
            "person_id": rng.choice(people["person_id"], n_touches),
            "ts": utc(start + pd.to_timedelta(minutes, unit="min")),
            "channel": rng.choice(["email", "webinar", "paid_search"], n_touches),
            "touch_type": rng.choice(
                ["email_open", "webinar_attend", "ad_click", None], n_touches
            ),
            "is_sales_touch": rng.random(n_touches) < 0.2,
        }
    )
    lead_at = start + pd.to_timedelta(rng.integers(0, 60 * 24, n_people), unit="h")
    mql_delay = pd.to_timedelta(rng.integers(1, 150 * 24, n_people), unit="h")
    has_mql = rng.random(n_people) < 0.6
    events = [("Lead", people["person_id"], lead_at)]
    events.append(("MQL", people["person_id"][has_mql], (lead_at + mql_delay)[has_mql]))
    stage = pd.concat(
        [
            pd.DataFrame({"person_id": p.to_numpy(), "stage": s, "entered_at": utc(t)})
            for s, p, t in events
        ],
        ignore_index=True,
    )
    return people, accounts, touch, stage


def pandas_touch_counts(people, touch, stage, *, horizon_days, lookback_days) -> pd.DataFrame:
    """Plain pandas: the scoring instant and marketing-touch counts per lead and channel."""
    firsts = stage.pivot_table(
        index="person_id", columns="stage", values="entered_at", aggfunc="min"
    )
    lead_at = firsts[["Lead", "MQL"]].min(axis=1)
    horizon_end = lead_at + pd.Timedelta(days=horizon_days)
    fired = firsts["MQL"].notna() & (firsts["MQL"] <= horizon_end)
    scored_at = firsts["MQL"].where(fired, horizon_end)
    rows = []
    for person, when in scored_at.items():
        mine = touch[(touch.person_id == person) & ~touch.is_sales_touch]
        mine = mine[(mine.ts < when) & (mine.ts >= when - pd.Timedelta(days=lookback_days))]
        rows.append(
            {
                "person_id": person,
                "scored_at": when,
                "current_rule": bool(fired[person]),
                "n_touches": len(mine),
                "n_channel_email": int((mine.channel == "email").sum()),
                "n_channel_paid_search": int((mine.channel == "paid_search").sum()),
                "n_type_ad_click": int((mine.touch_type == "ad_click").sum()),
            }
        )
    return pd.DataFrame(rows).set_index("person_id").sort_index()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_touch_features_match_a_pandas_count(con, seed) -> None:
    people, accounts, touch, stage = random_crm(seed)
    expr = scoring.build_lead_features(
        people=ibis.memtable(people),
        accounts=ibis.memtable(accounts),
        touchpoints=ibis.memtable(touch),
        stage_events=ibis.memtable(stage),
        horizon_days=60,
        lookback_days=45,
        channels=["email", "paid_search"],
        touch_types=["ad_click"],
    )
    got = con.execute(expr).set_index("person_id").sort_index()
    ref = pandas_touch_counts(people, touch, stage, horizon_days=60, lookback_days=45)
    cols = list(ref.columns)
    pd.testing.assert_frame_equal(
        got[cols].astype(ref.dtypes.to_dict()), ref, check_dtype=False, check_names=False
    )
    assert "account_employees" in got.columns


def test_touch_categories_are_the_most_frequent_marketing_values(con) -> None:
    rows = [
        ("t1", "p1", "2026-01-01", "email", "email_open", False),
        ("t2", "p1", "2026-01-02", "email", "email_open", False),
        ("t3", "p1", "2026-01-03", "webinar", "webinar_attend", False),
        ("t4", "p1", "2026-01-04", "sdr", "call", True),  # sales: not a marketing category
        ("t5", "p1", "2026-01-04", "sdr", "call", True),
        ("t6", "p1", "2026-01-04", "sdr", "call", True),
    ]
    cats = con.execute(scoring.touch_categories(ibis.memtable(touches(rows)), top=1))
    assert scoring.category_lists(cats) == {"channels": ["email"], "touch_types": ["email_open"]}


# ---------------------------------------------------------------------------------------------
# AUC against the Mann-Whitney U identity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("continuous", id="continuous-scores"),
        pytest.param("ties", id="many-ties"),
        pytest.param("binary", id="yes-no-rule"),
    ],
)
def test_auc_equals_mann_whitney_u_over_n1_n0(case) -> None:
    # Reference: AUC = U₁ / (n₁ n₀), U from scipy.stats.mannwhitneyu. Tolerance: float noise.
    rng = np.random.default_rng(5)
    y = rng.random(500) < 0.3
    noise = rng.normal(size=500) + y
    score = {"continuous": noise, "ties": np.round(noise), "binary": (noise > 0.5) * 1.0}[case]
    u = mannwhitneyu(score[y], score[~y], alternative="two-sided").statistic
    assert scoring.compute_auc(y, score) == pytest.approx(u / (y.sum() * (~y).sum()), rel=1e-12)


def test_auc_is_nan_with_one_class() -> None:
    assert math.isnan(scoring.compute_auc(np.zeros(5, bool), np.arange(5.0)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40).filter(
        lambda rows: 0 < sum(r[0] for r in rows) < len(rows)
    )
)
def test_auc_lies_in_unit_interval_and_reverses_with_the_score(rows) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)
    auc = scoring.compute_auc(y, s)
    assert 0.0 <= auc <= 1.0
    assert auc + scoring.compute_auc(y, -s) == pytest.approx(1.0)


def test_deciles_are_balanced_and_ties_share_the_best_decile() -> None:
    deciles = scoring.assign_deciles(np.arange(100.0))
    assert np.bincount(deciles)[1:].tolist() == [10] * 10
    assert deciles[99] == 1 and deciles[0] == 10
    assert set(scoring.assign_deciles(np.ones(7))) == {1}


# ---------------------------------------------------------------------------------------------
# The model on data simulated from a known logistic model
# ---------------------------------------------------------------------------------------------

TRUE_INTERCEPT = -2.0
TRUE_EFFECTS = {
    "segment[ENT]": 0.8,
    "segment[MM]": 0.4,
    "n_channel_webinar": 0.5,
    "n_touches": 0.1,
    "days_since_last_touch": -0.02,
}


def simulated_leads(n: int, seed: int) -> pd.DataFrame:
    """Leads whose conversion follows TRUE_INTERCEPT + Σ TRUE_EFFECTS · x (SMB reference)."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(["SMB", "MM", "ENT"], n, p=[0.5, 0.3, 0.2])
    frame = pd.DataFrame(
        {
            "segment": segment,
            "n_channel_webinar": rng.poisson(0.7, n),
            "n_touches": rng.poisson(4, n),
            "days_since_last_touch": rng.uniform(0, 60, n),
            "n_asset_views": np.zeros(n, dtype=int),  # constant: dropped with its reason
        }
    )
    eta = TRUE_INTERCEPT + sum(
        coef * (frame[name] if "[" not in name else (segment == name[8:-1]))
        for name, coef in TRUE_EFFECTS.items()
    )
    frame["converted"] = rng.random(n) < 1 / (1 + np.exp(-eta))
    return frame


def test_coefficients_recover_the_true_log_odds_within_three_standard_errors() -> None:
    # Reference: the simulation's true log-odds. Tolerance: 3 SE (seed 11 fixes the draw).
    model = scoring.fit_lead_score(simulated_leads(6000, seed=11), cap_quantile=1.0)
    assert model.is_fitted
    for name, truth in TRUE_EFFECTS.items():
        assert abs(model.params[name] - truth) < 3 * model.bse[name], name
    assert abs(model.params["Intercept"] - TRUE_INTERCEPT) < 3 * model.bse["Intercept"]


def test_constant_feature_is_dropped_with_its_reason() -> None:
    model = scoring.fit_lead_score(simulated_leads(800, seed=2))
    assert model.is_fitted
    assert "n_asset_views" not in model.params.index
    assert model.dropped.set_index("feature").loc["n_asset_views", "reason"].startswith("constant")


def test_collinear_count_is_dropped() -> None:
    frame = simulated_leads(800, seed=3).assign(
        n_channel_email=lambda f: f.n_touches - f.n_channel_webinar
    )
    model = scoring.fit_lead_score(frame)
    assert "n_channel_email" in set(model.dropped["feature"])
    assert np.isfinite(model.bse).all()


def test_unpenalised_fit_equals_statsmodels_glm() -> None:
    # Reference: statsmodels GLM Binomial on the same dummy coding. Tolerance: 1e-6 relative.
    frame = simulated_leads(1500, seed=4)
    model = scoring.fit_lead_score(frame, regularisation=0.0, cap_quantile=1.0)
    X = pd.get_dummies(frame["segment"]).drop(columns="SMB").astype(float)
    X.columns = [f"segment[{c}]" for c in X.columns]
    X = sm.add_constant(X.join(frame[["n_channel_webinar", "n_touches", "days_since_last_touch"]]))
    ref = sm.GLM(frame["converted"].astype(float), X, family=sm.families.Binomial()).fit()
    ref_params = ref.params.rename({"const": "Intercept"})
    ref_bse = ref.bse.rename({"const": "Intercept"})
    assert_allclose(model.params[ref_params.index], ref_params, rtol=1e-6)
    assert_allclose(model.bse[ref_bse.index], ref_bse, rtol=1e-6)


def test_ridge_sandwich_errors_approach_glm_errors_as_the_penalty_vanishes() -> None:
    # Reference: statsmodels GLM's model-based errors (the λ → 0 limit). Tolerance: 1e-3.
    frame = simulated_leads(1500, seed=4)
    ridge = scoring.fit_lead_score(frame, regularisation=1e-6, cap_quantile=1.0)
    plain = scoring.fit_lead_score(frame, regularisation=0.0, cap_quantile=1.0)
    assert_allclose(ridge.params, plain.params, rtol=1e-3, atol=1e-4)
    assert_allclose(ridge.bse, plain.bse, rtol=1e-3)


def with_accounts(frame: pd.DataFrame, n_accounts: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.assign(account_id=rng.integers(0, n_accounts, len(frame)).astype(str))


def test_unpenalised_cluster_errors_equal_statsmodels_cluster_errors() -> None:
    # Reference: statsmodels GLM with cov_type="cluster" on the same groups. Tolerance: 1e-6.
    frame = with_accounts(simulated_leads(1500, seed=4), 200, seed=5)
    model = scoring.fit_lead_score(frame, regularisation=0.0, cap_quantile=1.0)
    X = model.design.matrix(frame)
    groups = pd.factorize(frame["account_id"])[0]
    ref = sm.GLM(frame["converted"].astype(float), X, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    assert "cluster-robust by account_id (200 groups)" in model.method
    assert_allclose(model.bse, ref.bse, rtol=1e-6)


def test_ridge_cluster_sandwich_approaches_statsmodels_as_the_penalty_vanishes() -> None:
    # Reference: statsmodels' cluster-robust errors (the λ → 0 limit). Tolerance: 1e-3.
    frame = with_accounts(simulated_leads(1500, seed=4), 200, seed=5)
    ridge = scoring.fit_lead_score(frame, regularisation=1e-6, cap_quantile=1.0)
    plain = scoring.fit_lead_score(frame, regularisation=0.0, cap_quantile=1.0)
    assert_allclose(ridge.bse, plain.bse, rtol=1e-3)


def test_a_heavier_penalty_shrinks_the_slopes() -> None:
    frame = simulated_leads(600, seed=6)
    light = scoring.fit_lead_score(frame, regularisation=1.0)
    heavy = scoring.fit_lead_score(frame, regularisation=500.0)
    slopes = [c for c in light.params.index if c != "Intercept"]
    assert np.abs(heavy.params[slopes]).sum() < np.abs(light.params[slopes]).sum()


def test_calibration_on_fresh_data_from_the_same_model() -> None:
    # Reference: observed rate per decile of prediction, Wilson 99 % interval, on a fresh
    # sample of the simulated model; the mean prediction must lie inside. Seeds 21/22 fixed.
    model = scoring.fit_lead_score(simulated_leads(6000, seed=21))
    fresh = simulated_leads(6000, seed=22)
    table = scoring.calibration_table(
        fresh["converted"].to_numpy(), model.predict(fresh).to_numpy(), alpha=0.01
    )
    assert len(table) == 10 and table["n"].sum() == 6000
    inside = (table["mean_predicted"] >= table["observed_low"]) & (
        table["mean_predicted"] <= table["observed_high"]
    )
    assert inside.all(), table


def test_calibration_interval_is_the_wilson_interval() -> None:
    y = np.r_[np.ones(3), np.zeros(7)].astype(bool)
    table = scoring.calibration_table(y, np.linspace(0, 1, 10), n_bins=1)
    assert_allclose(
        table[["observed_low", "observed_high"]].iloc[0],
        proportion_confint(3, 10, method="wilson"),
        rtol=1e-12,
    )


def test_summary_reads_as_odds_ratios_with_intervals() -> None:
    model = scoring.fit_lead_score(simulated_leads(3000, seed=8))
    table = model.summary().set_index(["feature", "level"])
    ent = table.loc[("segment", "ENT")]
    assert ent["odds_ratio"] == pytest.approx(math.exp(model.params["segment[ENT]"]))
    assert ent["or_low"] < ent["odds_ratio"] < ent["or_high"]
    assert ent["reads"].startswith("segment ENT vs SMB: ")
    recency = table.loc[("days_since_last_touch", "")]
    assert recency["coef"] == pytest.approx(7 * model.params["days_since_last_touch"])
    assert not table.isna().any().any()


def test_the_rule_is_a_feature_only_when_asked() -> None:
    frame = simulated_leads(1500, seed=9)
    frame["current_rule"] = (frame["n_touches"] >= 5) | (frame["n_channel_webinar"] > 0)
    default = scoring.fit_lead_score(frame)
    assert "current_rule" not in default.params.index
    with_rule = scoring.fit_lead_score(frame, include_rule=True)
    assert "current_rule" in with_rule.params.index
    row = with_rule.summary().set_index("feature").loc["current_rule"]
    assert row["per"] == "MQL rule fired (vs not)"


# ---------------------------------------------------------------------------------------------
# Bad input: a result carrying the reason, no crash, no NaN tables
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [False, True], ids=["none-converted", "all-converted"])
def test_single_class_training_gives_an_unfitted_model_with_its_reason(value) -> None:
    frame = simulated_leads(200, seed=1).assign(converted=value)
    model = scoring.fit_lead_score(frame)
    assert not model.is_fitted
    assert "same outcome" in model.reason
    assert model.summary().empty
    assert model.predict(frame).eq(float(value)).all()  # the base rate


def test_every_feature_constant_gives_an_unfitted_model_and_a_clear_verdict() -> None:
    train = pd.DataFrame(
        {
            "segment": "SMB",
            "n_touches": 3,
            "n_channel_webinar": 0,
            "days_since_last_touch": 5.0,
            "converted": [True, False, False, False] * 50,
        }
    )
    model = scoring.fit_lead_score(train)
    assert not model.is_fitted
    assert model.reason == "every feature is constant in the training leads"
    assert set(model.dropped["feature"]) == {
        "segment",
        "n_touches",
        "n_channel_webinar",
        "days_since_last_touch",
    }
    assert model.dropped["reason"].str.startswith("constant").all()
    assert model.summary().empty
    assert model.predict(train).eq(0.25).all()  # the base rate
    # Downstream: every lead has the same score, so the AUC is exactly 0.5 and no table
    # holds a NaN; the verdict says why there is no score.
    frame = scored_frame(400, seed=6).assign(score=0.25)
    frame["decile"] = scoring.assign_deciles(frame["score"])
    ev = scoring.evaluate_scores(frame, quarter="2026Q2", n_boot=50)
    assert ev.auc == 0.5
    for table in (ev.summary(), ev.calibration, ev.gain):
        assert not table.isna().any().any()
    text = scoring.lead_quality_verdict(
        model,
        ev,
        scoring.compare_with_current_rule(frame, quarter="2026Q2", n_boot=50),
        scoring.choose_capacity_threshold(frame, None, quarter="2026Q2", n_boot=0),
    )
    assert "No lead score was fitted: every feature is constant" in text


def assert_every_empty_cell_is_explained(table: pd.DataFrame) -> None:
    """A saved table may hold an empty (NaN) cell only in a row whose ``note`` says why."""
    values = table.drop(columns=["note"])
    unexplained = values.isna().any(axis=1) & table["note"].fillna("").eq("")
    assert not unexplained.any(), table[unexplained]


def scored_frame(n: int, seed: int, quarter: str = "2026Q2", rate: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rate
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 1.5)))
    start = pd.Timestamp(scoring.Quarter.parse(quarter).start_at)
    frame = pd.DataFrame(
        {
            "person_id": [f"p{i}" for i in range(n)],
            "mql_at": pd.NaT,
            "score": score,
            "current_rule": rng.random(n) < 0.3 + 0.3 * y,
            "converted": y,
            "scored_at": utc(start + pd.to_timedelta(rng.integers(0, 90 * 24, n), unit="h")),
            "quarter": quarter,
            "region": rng.choice(["EMEA", "NA"], n),
            "is_window_closed": True,
            "converted_before_scoring": False,
            "is_evaluable": True,
            "disqualified_reason": None,
            "first_sales_touch_at": pd.NaT,
        }
    )
    frame["decile"] = scoring.assign_deciles(frame["score"])
    return frame


def test_quarter_without_converted_leads_gives_a_reason_and_empty_tables() -> None:
    frame = scored_frame(300, seed=1).assign(converted=False)
    ev = scoring.evaluate_scores(frame, quarter="2026Q2", n_boot=50)
    assert ev.reason == "no converted leads among the 300 evaluable leads of 2026Q2"
    assert ev.summary().empty and ev.calibration.empty and ev.gain.empty
    cmp = scoring.compare_with_current_rule(frame, quarter="2026Q2", n_boot=50)
    assert cmp.reason is not None and cmp.summary().empty


def test_evaluation_tables_have_no_missing_values() -> None:
    ev = scoring.evaluate_scores(scored_frame(800, seed=2), quarter="2026Q2", n_boot=100)
    assert ev.reason is None
    for table in (ev.summary(), ev.calibration, ev.gain):
        assert not table.isna().any().any()
    assert ev.auc_ci_low <= ev.auc <= ev.auc_ci_high
    assert ev.rule_auc_ci_low <= ev.rule_auc <= ev.rule_auc_ci_high


def test_rule_metrics_match_a_hand_count() -> None:
    frame = scored_frame(10, seed=0)
    frame["converted"] = [True, True, True, True, False, False, False, False, False, False]
    frame["current_rule"] = [True, True, False, False, True, False, False, False, False, False]
    ev = scoring.evaluate_scores(frame, quarter="2026Q2", n_boot=0)
    # Reference by hand: 3 sent, 2 of them converted; 4 converted in all.
    assert ev.rule["precision"] == pytest.approx(2 / 3)
    assert ev.rule["recall"] == pytest.approx(0.5)
    assert ev.rule["missed_share"] == pytest.approx(0.5)
    # AUC of a yes/no rule: (TPR + TNR) / 2 = (2/4 + 5/6) / 2
    assert ev.rule_auc == pytest.approx((0.5 + 5 / 6) / 2)


def test_gain_table_reaches_every_converter_and_lifts_average_to_one() -> None:
    ev = scoring.evaluate_scores(scored_frame(1000, seed=3), quarter="2026Q2", n_boot=0)
    assert ev.gain["cum_share_converted"].iloc[-1] == pytest.approx(1.0)
    assert ev.gain["cum_share_leads"].iloc[-1] == pytest.approx(1.0)
    assert np.average(ev.gain["lift"], weights=ev.gain["n"]) == pytest.approx(1.0)


def test_equal_volume_comparison_counts_the_sqls_gained() -> None:
    frame = scored_frame(10, seed=0)
    frame["converted"] = [True, True, True, False, False, False, False, False, False, False]
    frame["score"] = [0.9, 0.8, 0.1, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.05]
    frame["current_rule"] = [False, False, True, True, False, False, False, False, False, False]
    cmp = scoring.compare_with_current_rule(frame, quarter="2026Q2", n_boot=200)
    # Reference by hand: the rule sends 2 with 1 SQL; the top-2 scores hold 2 SQLs.
    assert cmp.rule["n_converted_sent"] == 1 and cmp.model["n_converted_sent"] == 2
    assert cmp.sqls_gained == 1.0
    assert cmp.sqls_gained_ci_low <= 1.0 <= cmp.sqls_gained_ci_high


# ---------------------------------------------------------------------------------------------
# The time split
# ---------------------------------------------------------------------------------------------


def lead_rows(
    quarters: dict[str, int], observed_until: str, window_days: int = 90
) -> pd.DataFrame:
    rows = []
    for quarter, n in quarters.items():
        start = pd.Timestamp(scoring.Quarter.parse(quarter).start_at)
        for i in range(n):
            scored = start + pd.Timedelta(days=i % 90)
            rows.append(
                {
                    "person_id": f"{quarter}-{i}",
                    "scored_at": scored,
                    "observed_until": at(observed_until),
                    "is_window_closed": scored + pd.Timedelta(days=window_days)
                    <= at(observed_until),
                    "converted": i % 4 == 0,
                    "converted_before_scoring": i % 10 == 9,
                }
            )
    return pd.DataFrame(rows)


def test_split_falls_back_to_the_latest_quarter_whose_windows_closed() -> None:
    leads = lead_rows({"2025Q4": 40, "2026Q1": 40, "2026Q2": 40, "2026Q3": 40}, "2026-09-30")
    split = scoring.split_leads_by_quarter(leads, "2026Q3")
    assert split.quarter == "2026Q2" and split.reason is None
    assert "2026Q3" in split.note and "2026Q2" in split.note
    assert set(split.train["quarter"]) == {"2025Q4", "2026Q1"}
    counts = split.counts.set_index("quarter")
    assert counts.loc["2026Q3", "role"] == "not used"
    assert counts.loc["2026Q2", "n_converted_before_scoring"] == 4
    assert counts.loc["2026Q2", "n_evaluable"] == len(split.test) == 36


def test_split_says_why_when_no_quarter_has_closed() -> None:
    leads = lead_rows({"2026Q3": 40}, "2026-09-30")
    split = scoring.split_leads_by_quarter(leads, "2026Q3")
    assert split.quarter is None and "no quarter" in split.reason


# ---------------------------------------------------------------------------------------------
# Capacity and the SLA
# ---------------------------------------------------------------------------------------------


def queue_late_reference(arrivals: list[float], service_hours: float, sla_hours: float) -> int:
    """Lead by lead: one lead at a time, oldest first, each taking ``service_hours``; a lead
    is late when work on it starts more than ``sla_hours`` after it arrived."""
    free_at = -math.inf
    late = 0
    for arrival in sorted(arrivals):
        start = max(arrival, free_at)
        late += start - arrival > sla_hours
        free_at = start + service_hours
    return late


def test_sla_queue_by_hand() -> None:
    # Reference by hand: one lead per 24 h; three leads at hour 0 and one at hour 30. Work
    # starts at 0, 24, 48 for the first three (waits 0, 24, 48) and at 72 for the fourth
    # (wait 42). SLA 24 h: a wait of exactly 24 h is within it, 48 and 42 are late.
    arrivals = np.array([0.0, 0.0, 0.0, 30.0])
    late = scoring._late_counts(arrivals, np.arange(4), 24.0, 24.0)
    assert late.tolist() == [0, 0, 0, 1, 2]
    # Best first: the hour-30 lead, then the others. Top-3 = {30, 0, 0}: waits 0, 24 and
    # (start max(30, 48) = 48) 18, none late; all four as above: 2 late.
    late = scoring._late_counts(arrivals, np.array([3, 0, 1, 2]), 24.0, 24.0)
    assert late.tolist() == [0, 0, 0, 0, 2]
    assert scoring._queue_waits(arrivals, 24.0).tolist() == [0.0, 24.0, 48.0, 42.0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sla_queue_matches_a_lead_by_lead_simulation_for_every_k(seed) -> None:
    # Reference: queue_late_reference run on each top-k subset separately.
    rng = np.random.default_rng(seed)
    arrivals = np.round(rng.uniform(0, 300, 40), 1)
    order = rng.permutation(40)
    service, sla = float(rng.uniform(3, 12)), float(rng.choice([1.0, 8.0, 24.0]))
    late = scoring._late_counts(arrivals, order, service, sla)
    for k in range(41):
        assert late[k] == queue_late_reference(list(arrivals[order[:k]]), service, sla), k


def hand_queue_frame() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four NA leads of 2026Q2 (which starts on Wednesday 2026-04-01) and 5 leads a week of
    SDR capacity: one lead per business day, 24 business hours each."""
    frame = scored_frame(4, seed=0)
    frame["region"] = "NA"
    frame["score"] = [0.9, 0.8, 0.7, 0.6]
    frame["scored_at"] = utc(["2026-04-01 09:00"] * 3 + ["2026-04-02 15:00"])
    users = pd.DataFrame(
        {"user_id": ["u1"], "team": ["sdr"], "region": ["NA"], "capacity_leads_per_week": [5.0]}
    )
    return frame, users


@pytest.mark.parametrize(
    ("sla_hours", "threshold", "late_share"),
    [
        # Reference by hand: arrivals at business hours 9, 9, 9 and 39 after the quarter
        # start; work starts at 9, 33, 57 and 81, so the waits are 0, 24, 48 and 42 h.
        pytest.param(1.0, 0.9, 0.0, id="1h-only-the-first-waits-under-an-hour"),
        pytest.param(24.0, 0.8, 0.0, id="24h-the-third-waits-48h"),
        pytest.param(48.0, 0.6, 0.0, id="48h-all-four-within"),
    ],
)
def test_threshold_by_hand_follows_the_sla(sla_hours, threshold, late_share) -> None:
    frame, users = hand_queue_frame()
    result = scoring.choose_capacity_threshold(
        frame, users, quarter="2026Q2", sla_hours=sla_hours, max_late_share=0.0, n_boot=0
    )
    row = result.by_region.set_index("region").loc["NA"]
    assert row["capacity_leads_per_day"] == 1.0
    assert row["threshold"] == threshold
    assert row["score_late_share"] == late_share


def test_threshold_by_hand_with_a_late_share_allowed() -> None:
    # Reference by hand (waits 0, 24, 48, 42 h; SLA 24 h): top-3 has 1 late of 3, top-4 has
    # 2 of 4. Allowing a third late sends three leads; allowing half sends all four.
    frame, users = hand_queue_frame()
    for share, threshold in ((1 / 3, 0.7), (0.5, 0.6)):
        row = scoring.choose_capacity_threshold(
            frame, users, quarter="2026Q2", sla_hours=24.0, max_late_share=share, n_boot=0
        ).by_region.iloc[0]
        assert row["threshold"] == threshold


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shorter_sla_never_allows_more_leads(seed) -> None:
    # Property: waits do not depend on the SLA, so a shorter one makes every set of leads at
    # least as late. Checked over SLAs from 1 h to 200 h, per region.
    frame = scored_frame(900, seed=seed)
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "team": ["sdr", "sdr"],
            "region": ["EMEA", "NA"],
            "capacity_leads_per_week": [20.0, 35.0],
        }
    )
    sent = {
        sla: scoring.choose_capacity_threshold(
            frame, users, quarter="2026Q2", sla_hours=sla, n_boot=0
        ).by_region.set_index("region")["score_leads_per_week"]
        for sla in (1.0, 4.0, 24.0, 72.0, 200.0)
    }
    slas = sorted(sent)
    for shorter, longer in zip(slas, slas[1:], strict=False):
        assert (sent[shorter] <= sent[longer]).all(), (shorter, longer)
    assert (sent[1.0] < sent[200.0]).all()  # the SLA matters (the audit found 1 h = 100 h)


def test_capacity_unknown_without_users_says_so() -> None:
    result = scoring.choose_capacity_threshold(scored_frame(200, seed=1), None, quarter="2026Q2")
    assert not result.capacity_known
    assert result.reason == "capacity unknown: no users table in this export"
    assert (result.by_region["rule_leads_per_week"] > 0).all()
    shown = result.summary()
    assert list(shown.columns) == ["region", "rule_leads_per_week", "rule_converted"]
    assert not shown.isna().any().any()


def test_threshold_keeps_the_flow_within_capacity() -> None:
    frame = scored_frame(2600, seed=4)  # about 100 leads a week per region
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4"],
            "team": ["sdr", "sdr", "sdr", "marketing"],
            "region": ["EMEA", "EMEA", "NA", "NA"],
            "capacity_leads_per_week": [15.0, 15.0, 20.0, 500.0],
        }
    )
    result = scoring.choose_capacity_threshold(frame, users, quarter="2026Q2", n_boot=100)
    table = result.summary().set_index("region")
    assert table.loc["EMEA", "capacity_leads_per_week"] == 30.0
    assert table.loc["NA", "capacity_leads_per_week"] == 20.0
    for region in ("EMEA", "NA"):
        row = table.loc[region]
        assert row["score_leads_per_week"] <= row["capacity_leads_per_week"] * 1.05
        assert row["score_late_share"] <= 0.05
        sent = frame[(frame.region == region) & (frame.score >= row["threshold"])]
        assert len(sent) / result.n_weeks == pytest.approx(row["score_leads_per_week"])
    assert result.sqls_gained_ci_low <= result.sqls_gained <= result.sqls_gained_ci_high
    assert table.loc["total", "sqls_gained"] == result.sqls_gained


def test_threshold_on_a_grid_of_cuts_is_feasible(monkeypatch) -> None:
    # Reference: the exact search over every cut (about 450 per region). On a grid of 50
    # cuts the threshold is still feasible and never sends more leads than the exact one.
    frame = scored_frame(900, seed=3)
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "team": ["sdr", "sdr"],
            "region": ["EMEA", "NA"],
            "capacity_leads_per_week": [20.0, 35.0],
        }
    )
    exact = scoring.choose_capacity_threshold(frame, users, quarter="2026Q2", n_boot=0)
    monkeypatch.setattr(scoring, "MAX_EXACT_CUTS", 50)
    grid = scoring.choose_capacity_threshold(frame, users, quarter="2026Q2", n_boot=0)
    assert "grid of 50 cuts" in grid.note
    exact_rows = exact.by_region.set_index("region")
    for region, row in grid.by_region.set_index("region").iterrows():
        assert 0 < row["score_leads_per_week"] <= exact_rows.loc[region, "score_leads_per_week"]
        assert row["score_late_share"] <= 0.05


def test_threshold_table_explains_every_empty_cell() -> None:
    frame = scored_frame(1300, seed=8)
    users = pd.DataFrame(  # NA has no capacity; EMEA has none to spare
        {"user_id": ["u1"], "team": ["sdr"], "region": ["EMEA"], "capacity_leads_per_week": [0.0]}
    )
    for sla, n_boot in ((24.0, 50), (0.01, 0)):
        result = scoring.choose_capacity_threshold(
            frame, users, quarter="2026Q2", sla_hours=sla, n_boot=n_boot
        )
        table = result.summary().set_index("region")
        assert table.loc["NA", "note"] == "capacity unknown: no threshold"
        assert "no threshold" in table.loc["total", "note"]
        assert_every_empty_cell_is_explained(table)
        empty_in_total = set(table.columns[table.loc["total"].isna()])
        allowed = {"threshold"} | (
            {"sqls_gained_ci_low", "sqls_gained_ci_high"} if not n_boot else set()
        )
        assert empty_in_total <= allowed, empty_in_total
    assert "no lead can be worked within the 0.01-hour SLA" in table.loc["EMEA", "note"]
    assert table.loc["EMEA", "score_leads_per_week"] == 0
    assert table.loc["EMEA", "rule_late_share"] == 1.0


def test_backtest_explains_every_empty_cell() -> None:
    # 2025Q4 has no earlier quarter to fit on; 2026Q3's windows are still open.
    rows = lead_rows({"2025Q4": 90, "2026Q1": 90, "2026Q2": 90, "2026Q3": 90}, "2026-09-30")
    features = simulated_leads(len(rows), seed=12).drop(columns=["converted"])
    leads = pd.concat([rows, features], axis=1).assign(
        mql_at=pd.NaT, current_rule=lambda f: f["n_touches"] >= 4
    )
    table = scoring.backtest_by_quarter(
        leads, quarters=["2025Q4", "2026Q1", "2026Q2", "2026Q3"], n_boot=20
    ).set_index("quarter")
    assert table.loc["2026Q3", "note"] == "outcome windows of 2026Q3 not closed"
    assert table.loc["2025Q4", "note"].startswith("no model")
    assert table.loc["2026Q2", "note"] == "" and table.loc["2026Q2"].notna().all()
    assert_every_empty_cell_is_explained(table)


# ---------------------------------------------------------------------------------------------
# Closed loop
# ---------------------------------------------------------------------------------------------


def test_disqualification_reasons_by_decile_are_shares_of_the_decile() -> None:
    frame = scored_frame(200, seed=5)
    frame.loc[frame.index[:60], "disqualified_reason"] = ["no budget", "no fit", "bad data"] * 20
    table = scoring.count_disqualifications_by_decile(frame, quarter="2026Q2")
    assert table["n_leads"].sum() == 200 and table["n_disqualified"].sum() == 60
    shares = table[["no budget", "no fit", "bad data"]].sum(axis=1)
    assert_allclose(shares[table["n_disqualified"] > 0], 1.0)
    assert not table.isna().any().any()


def test_conversion_by_sla_separates_within_late_and_unworked() -> None:
    frame = scored_frame(4, seed=0)
    frame["current_rule"] = True
    frame["mql_at"] = utc(["2026-07-06 09:00"] * 4)  # a Monday
    frame["first_sales_touch_at"] = utc(
        ["2026-07-06 10:00", "2026-07-07 09:00", "2026-07-08 09:00", None]
    )
    frame["decile"] = 1
    frame["converted"] = [True, False, True, False]
    table = scoring.measure_conversion_by_sla(frame, sla_hours=24, quarter="2026Q2")
    got = table.set_index("worked")[["n", "n_converted"]].to_dict("index")
    assert got == {
        "within SLA": {"n": 2, "n_converted": 1},  # 1 h and exactly 24 h
        "late": {"n": 1, "n_converted": 1},
        "not worked": {"n": 1, "n_converted": 0},
    }


# ---------------------------------------------------------------------------------------------
# End to end on a small synthetic CRM, and recovery on the demo when it exists
# ---------------------------------------------------------------------------------------------


def test_verdict_states_the_reason_when_nothing_could_be_judged() -> None:
    frame = scored_frame(100, seed=1).assign(converted=False)
    model = scoring.fit_lead_score(simulated_leads(100, seed=1).assign(converted=False))
    text = scoring.lead_quality_verdict(
        model,
        scoring.evaluate_scores(frame, quarter="2026Q2", n_boot=0),
        scoring.compare_with_current_rule(frame, quarter="2026Q2", n_boot=0),
        scoring.choose_capacity_threshold(frame, None, quarter="2026Q2", n_boot=0),
    )
    assert "could not be evaluated: no converted leads" in text
    assert "No score was fitted" in text


def test_verdict_reports_auc_of_score_and_rule() -> None:
    frame = scored_frame(800, seed=2)
    model = scoring.fit_lead_score(simulated_leads(800, seed=2))
    ev = scoring.evaluate_scores(frame, quarter="2026Q2", n_boot=50)
    text = scoring.lead_quality_verdict(
        model,
        ev,
        scoring.compare_with_current_rule(frame, quarter="2026Q2", n_boot=50),
        scoring.choose_capacity_threshold(frame, None, quarter="2026Q2", n_boot=0),
    )
    assert f"AUC {ev.auc:.2f}" in text and f"{ev.rule_auc:.2f} for the rule" in text
    assert "Capacity unknown: no users table" in text


def test_pipeline_runs_end_to_end_on_a_random_crm(con) -> None:
    people, accounts, touch, stage = random_crm(7, n_people=120, n_touches=1500)
    sql = stage[stage.stage == "MQL"].sample(frac=0.4, random_state=1)
    stage = pd.concat(
        [stage, sql.assign(stage="SQL", entered_at=sql.entered_at + pd.Timedelta(days=5))]
    )
    expr = scoring.build_lead_features(
        people=ibis.memtable(people),
        accounts=ibis.memtable(accounts),
        touchpoints=ibis.memtable(touch),
        stage_events=ibis.memtable(stage),
        channels=["email", "webinar"],
        observed_until=datetime(2027, 3, 1, tzinfo=UTC),
    )
    leads = con.execute(expr)
    split = scoring.split_leads_by_quarter(leads, "2026Q2")
    model = scoring.fit_lead_score(split.train)
    scored = scoring.score_leads(model, leads)
    assert list(scored.columns[: len(scoring.LEAD_SCORE_COLUMNS)]) == list(
        scoring.LEAD_SCORE_COLUMNS
    )
    assert scored["score"].between(0, 1).all()
    ev = scoring.evaluate_scores(scored, quarter=split.quarter, n_boot=20)
    assert ev.reason is not None or not ev.summary().isna().any().any()


DEMO_SPEC = importlib.util.find_spec("alignment.demo")


@pytest.fixture(scope="module")
def demo_leads(tmp_path_factory):
    if DEMO_SPEC is None:
        pytest.skip("alignment.demo does not exist yet: no planted truth to recover")
    from alignment import demo

    out = tmp_path_factory.mktemp("demo")
    # medium (about 30k leads): on small (about 3k) the score-minus-rule AUC interval is too
    # wide to exclude zero; generating and building features takes about 4 s
    demo.generate_demo(out, seed=7, scale="medium")
    truth = json.loads((out / "ground_truth.json").read_text())
    if importlib.util.find_spec("alignment.store") is not None:
        from alignment import store

        data = store.open_data(out)
        con = data.con

        def table(name):
            return data.table(name) if data.has(name) else None
    else:
        con = ibis.duckdb.connect()

        def table(name):
            path = out / f"{name}.parquet"
            return con.read_parquet(path, table_name=name) if path.exists() else None

    cats = scoring.category_lists(con.execute(scoring.touch_categories(table("touchpoints"))))
    expr = scoring.build_lead_features(
        people=table("people"),
        accounts=table("accounts"),
        touchpoints=table("touchpoints"),
        stage_events=table("stage_events"),
        asset_events=table("asset_events"),
        **cats,
    )
    leads = con.execute(expr)
    split = scoring.split_leads_by_quarter(leads, truth["quarters"][-1])
    assert split.reason is None, split.reason
    return split, scoring.fit_lead_score(split.train), truth


def test_model_ranks_demo_leads_better_than_the_planted_rule(demo_leads) -> None:
    # Reference: the demo's planted MQL rule (its MQL events). The default score does not
    # use the rule: fit and engagement strictly before the scoring instant only. Seed 7
    # fixes the data; the paired bootstrap interval of AUC(score) - AUC(rule) must exclude 0
    # (measured: 0.762 vs 0.726, interval 0.017 to 0.052; seeds 1 and 2 give 0.033 to 0.068
    # and 0.012 to 0.045).
    split, model, _truth = demo_leads
    assert "current_rule" not in model.params.index
    ev = scoring.evaluate_scores(
        scoring.score_leads(model, split.test), quarter=split.quarter, n_boot=200
    )
    assert ev.reason is None, ev.reason
    assert ev.auc > ev.rule_auc
    assert ev.auc_diff_ci_low > 0, (ev.auc, ev.rule_auc, ev.auc_diff_ci_low)


def planted_contrasts(truth: dict, model: scoring.ScoreModelResult) -> dict[str, float]:
    """Planted fit log-odds re-expressed in the model's columns.

    A level ``segment=ENT`` becomes ``segment[ENT]`` against the model's reference level
    (the most frequent in training; the demo's own reference has effect 0).
    """
    effects = truth["scoring"]["effects"]
    design = model.design
    out: dict[str, float] = {}
    for key, value in effects.items():
        if "=" in key:
            feature, level = key.split("=", 1)
            reference = design.references.get(feature)
            if reference is None or level not in design.levels[feature]:
                continue
            out[f"{feature}[{level}]"] = value - effects.get(f"{feature}={reference}", 0.0)
    return out


def planted_engagement(truth: dict, model: scoring.ScoreModelResult) -> dict[str, float]:
    """Planted nonzero channel effects (``exposed_<channel>``, counted strictly before the MQL
    touch) keyed by the model's count column of that channel, where the model has one."""
    effects = truth["scoring"]["effects"]
    return {
        f"n_channel_{key.removeprefix('exposed_')}": value
        for key, value in effects.items()
        if key.startswith("exposed_")
        and value != 0
        and f"n_channel_{key.removeprefix('exposed_')}" in model.params.index
    }


def test_model_coefficients_have_the_planted_signs(demo_leads) -> None:
    # Reference: ground_truth.json scoring.effects (true log-odds of the demo's latent
    # qualification, fit and engagement strictly before the MQL touch). The fitted scale
    # differs (the demo passes eta through the SAL and SQL steps), so only signs are
    # compared. Fit: every planted contrast the data can resolve (|truth| > 2 cluster-robust
    # standard errors) has the planted sign. Engagement: the planted effect is a step at a
    # channel's first touch and the model's column a per-touch count, so no size is compared:
    # no count is significantly (|z| > 2) of the opposite sign, and at least two are
    # significantly of the planted sign (measured: email z = 6.8, organic_search z = 6.5).
    # Seed 7 fixes the data.
    _split, model, truth = demo_leads
    contrasts = planted_contrasts(truth, model)
    resolvable = {k: v for k, v in contrasts.items() if abs(v) > 2 * model.bse[k]}
    assert len(resolvable) >= 4, (contrasts, model.bse)
    wrong = {k: (v, model.params[k]) for k, v in resolvable.items() if v * model.params[k] <= 0}
    assert not wrong, wrong
    engagement = planted_engagement(truth, model)
    z = {k: model.params[k] / model.bse[k] for k in engagement}
    opposite = {k: z[k] for k, v in engagement.items() if np.sign(v) * z[k] < -2}
    assert not opposite, (engagement, z)
    agreeing = [k for k, v in engagement.items() if np.sign(v) * z[k] > 2]
    assert len(agreeing) >= 2, (engagement, z)
