"""Lead quality: a lead score known at the routing decision, against the current MQL rule.

The question is whether the MQL rule sends sales the leads that convert, and where a score
threshold should sit given the sales team's capacity. Row-level work (the as-of features) is
written once in Ibis and executes nothing; the statistics run on the small per-lead pandas
frame that the caller gets by executing :func:`build_lead_features` once.

Definitions (all timestamps UTC):

- A **lead** is a person with a ``Lead`` or ``MQL`` stage event; ``lead_at`` is the earliest
  of them. (An export whose ``stage_events`` hold no ``Lead`` event at all makes every person a
  lead from ``people.created_at``.)
- The **current MQL rule** is what the CRM recorded: the lead's first ``MQL`` event. Its
  prediction for a lead, ``current_rule``, is true when that event falls within
  ``horizon_days`` (default 90) of ``lead_at``.
- The **scoring instant** ``scored_at`` is the moment a routing decision is made: the MQL
  instant when the rule fired within the horizon, else ``lead_at + horizon_days`` (the moment
  the rule has said "no"). Every lead created is thus in the evaluation population, the rule's
  "yes" and "no" alike, and the score and the rule are judged on the same leads with the same
  information.
- **Leakage rule**: every feature counts events **strictly before** ``scored_at`` (an event at
  the very instant is excluded, as is the touch that triggered the MQL when the CRM stamps both
  with one time), and no earlier than ``lookback_days`` before it. Sales touches are never
  features: they answer the hand-off and would leak the rule's decision.
- The **outcome** ``converted``: the lead reached ``outcome_stage`` (``SQL`` by default, or any
  later stage: Opportunity, Customer) in ``[scored_at, scored_at + window_days]``. A lead whose
  window has not closed by ``observed_until`` (the export's last event unless given) has an
  unknown outcome and is excluded and counted; so is a lead that reached the stage before its
  scoring instant (nothing left to decide).

The caveat every comparison carries: leads the rule did not send were not worked by sales, so
their observed conversion understates what they would convert if worked. SQLs "gained" by a
score over the rule are therefore conservative.

The steps, in the order a notebook calls them:

1. :func:`touch_categories` (Ibis) → the channels and touch types that get a count column;
   :func:`build_lead_features` (Ibis) → one row per lead; execute it once.
2. :func:`split_leads_by_quarter`: fit on the quarters before the evaluation quarter (the
   report quarter, or the latest quarter whose outcome windows have all closed).
3. :func:`fit_lead_score` → :class:`ScoreModelResult`: logistic regression with a light L2
   (ridge) penalty on standardised coefficients, statsmodels' ``fit_regularized``, standard
   errors from the ridge sandwich; odds ratios in ``summary()``.
4. :func:`score_leads` → the ``lead_scores`` table; :func:`evaluate_scores` →
   :class:`ScoreEvaluation` (AUC with a paired bootstrap interval for the score and the rule,
   calibration, gain by decile; ``summary()`` is the ``scoring_metrics`` table);
   :func:`compare_with_current_rule` → :class:`RuleComparison` at the rule's volume.
5. :func:`choose_capacity_threshold` → :class:`ThresholdResult`: per region, the lowest
   threshold whose leads the SDRs can work within the SLA (a first-in-first-out queue).
6. Closed loop: :func:`count_disqualifications_by_decile`, :func:`measure_conversion_by_sla`;
   per quarter: :func:`backtest_by_quarter`, :func:`lead_scoring_kpis`,
   :func:`lead_quality_verdict`.

A result that cannot be computed (no leads, one outcome class, every feature constant, no
capacity) carries a ``reason`` and empty tables instead of raising or holding NaN tables.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from ibis import _

from alignment.funnel import hours_between
from alignment.journeys import touches_with_account
from alignment.params import Quarter

log = logging.getLogger(__name__)

FUNNEL_STAGES: tuple[str, ...] = ("Lead", "MQL", "SAL", "SQL", "Opportunity", "Customer")
"""Stages in funnel order; reaching a stage at or after the outcome stage counts."""
OUTCOME_STAGES: tuple[str, ...] = ("SQL", "Opportunity", "Customer")
BUYER_ASSET_EVENTS: tuple[str, ...] = ("external_view", "download", "print", "forward")
"""Asset events that a buyer makes (a rep's views and shares are not the lead's engagement)."""
FIT_COLUMNS: tuple[str, ...] = ("segment", "industry", "region", "persona")
UNKNOWN = "(unknown)"
OTHER = "(other)"
INTERCEPT = "Intercept"
LEAD_SCORE_COLUMNS: tuple[str, ...] = (
    "person_id",
    "mql_at",
    "score",
    "decile",
    "current_rule",
    "converted",
    "scored_at",
    "quarter",
    "region",
    "is_window_closed",
)
"""Columns of the ``lead_scores`` report table."""
IDENTITY_COLUMNS: tuple[str, ...] = (
    "person_id",
    "account_id",
    "lead_at",
    "mql_at",
    "scored_at",
    "current_rule",
    "observed_until",
    "is_window_closed",
)
OUTCOME_COLUMNS: tuple[str, ...] = (
    "outcome_at",
    "converted",
    "converted_before_scoring",
    "disqualified_at",
    "disqualified_reason",
    "first_sales_touch_at",
)
"""Known only after the scoring instant: never model inputs."""
SECONDS_PER_DAY = 86_400


def _days(n: float) -> ir.IntervalScalar:
    """An interval of ``n`` days of 24 h (seconds, so no calendar or DST arithmetic)."""
    return ibis.interval(seconds=int(round(n * SECONDS_PER_DAY)))


def _slug(text: str) -> str:
    """``"Paid Search"`` → ``"paid_search"``: a column-name part."""
    return re.sub(r"[^0-9a-z]+", "_", str(text).strip().lower()).strip("_") or "none"


# --------------------------------------------------------------------------------------------
# Ibis: population, features and outcome as of the scoring instant
# --------------------------------------------------------------------------------------------


def touch_categories(touchpoints: ir.Table, *, top: int = 8) -> ir.Table:
    """The most frequent channels and touch types of marketing touches: ``kind, value, n``.

    ``kind`` is ``"channel"`` or ``"touch_type"``; at most ``top`` values of each, most
    frequent first (ties by name). Execute it and pass the values to
    :func:`build_lead_features` as ``channels`` and ``touch_types`` (Ibis needs column names
    before it runs, and this keeps the feature query free of data-dependent SQL).
    """
    if top <= 0:
        raise ValueError(f"top must be positive; got {top}")
    columns = set(touchpoints.columns)
    marketing = touchpoints
    if "is_sales_touch" in columns:
        marketing = marketing.filter(~_.is_sales_touch.fill_null(False))
    parts = []
    for kind in ("channel", "touch_type"):
        if kind not in columns:
            continue
        counts = (
            marketing.filter(marketing[kind].notnull())
            .group_by(value=marketing[kind].cast("string"))
            .aggregate(n=_.count())
            .order_by([ibis.desc("n"), "value"])
            .limit(top)
            .mutate(kind=ibis.literal(kind))
        )
        parts.append(counts.select("kind", "value", "n"))
    out = parts[0]
    for part in parts[1:]:
        out = out.union(part)
    return out


def category_lists(categories: pd.DataFrame) -> dict[str, list[str]]:
    """Executed :func:`touch_categories` → ``{"channels": [...], "touch_types": [...]}``."""
    out: dict[str, list[str]] = {"channels": [], "touch_types": []}
    for kind, key in (("channel", "channels"), ("touch_type", "touch_types")):
        rows = categories[categories["kind"] == kind].sort_values(
            ["n", "value"], ascending=[False, True]
        )
        out[key] = [str(v) for v in rows["value"]]
    return out


def build_lead_population(
    stage_events: ir.Table, people: ir.Table, *, horizon_days: int = 90
) -> ir.Table:
    """One row per lead: ``person_id, account_id, lead_at, mql_at, current_rule, scored_at``.

    Parameters
    ----------
    stage_events, people : ibis.Table
        Contract tables.
    horizon_days : int
        Days of 24 h after ``lead_at`` within which an MQL counts as the rule firing; a lead
        without one is scored at ``lead_at + horizon_days``.

    Returns
    -------
    ibis.Table
        ``mql_at`` is the first MQL event (null if none; it may fall after the horizon, then
        ``current_rule`` is false); ``scored_at`` is the scoring instant (module docstring).

    Notes
    -----
    Repeated and out-of-order stage events are harmless: only the first Lead and the first
    MQL count, so a recycled lead that becomes an MQL again is scored at its first MQL.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive; got {horizon_days}")
    firsts = (
        stage_events.filter(_.stage.isin(["Lead", "MQL"]))
        .group_by(person_id=_.person_id.cast("string"))
        .aggregate(
            first_lead_at=_.entered_at.min(where=_.stage == "Lead"),
            first_mql_at=_.entered_at.min(where=_.stage == "MQL"),
        )
    )
    n_lead_events = stage_events.filter(_.stage == "Lead").count().as_scalar()
    persons = people.select(
        person_id=_.person_id.cast("string"),
        account_id=_.account_id.cast("string"),
        created_at=_.created_at,
    )
    joined = persons.left_join(firsts, "person_id").drop("person_id_right")
    # an export without any Lead event: every person is a lead from people.created_at
    joined = joined.filter(
        _.first_lead_at.notnull() | _.first_mql_at.notnull() | (n_lead_events == 0)
    )
    earliest = ibis.least(
        _.first_lead_at.fill_null(_.first_mql_at), _.first_mql_at.fill_null(_.first_lead_at)
    )
    with_lead = joined.mutate(lead_at=earliest.fill_null(_.created_at))
    horizon_end = _.lead_at + _days(horizon_days)
    with_rule = with_lead.mutate(
        mql_at=_.first_mql_at,
        current_rule=_.first_mql_at.notnull() & (_.first_mql_at <= horizon_end),
    )
    return with_rule.mutate(
        scored_at=ibis.cases((_.current_rule, _.mql_at), else_=horizon_end)
    ).select("person_id", "account_id", "lead_at", "mql_at", "current_rule", "scored_at")


def _marketing_touches(touchpoints: ir.Table, people: ir.Table) -> ir.Table:
    """Touches with ``account_id`` and ``is_sales_touch`` filled (journeys' rule), typed."""
    touches = touches_with_account(touchpoints, people)
    touch_type = (
        touches.touch_type.cast("string")
        if "touch_type" in touches.columns
        else ibis.null("string")
    )
    return touches.select(
        person_id=_.person_id.cast("string"),
        account_id=_.account_id.cast("string"),
        ts=_.ts,
        channel=_.channel.cast("string"),
        touch_type=touch_type,
        is_sales_touch=_.is_sales_touch,
    )


def _in_lookback(ts: ir.Value, scored_at: ir.Value, lookback_days: int) -> ir.BooleanValue:
    """Strictly before the scoring instant, and no earlier than ``lookback_days`` before it."""
    return (ts < scored_at) & (ts >= scored_at - _days(lookback_days))


def _touch_features(
    asof: ir.Table,
    touches: ir.Table,
    *,
    lookback_days: int,
    channels: Sequence[str],
    touch_types: Sequence[str],
) -> ir.Table:
    """Per lead: touch counts (total, by channel, by type) and the last touch instant."""
    mine = asof.select("person_id", "scored_at").join(
        touches.filter(~_.is_sales_touch).select("person_id", "ts", "channel", "touch_type"),
        "person_id",
    )
    mine = mine.filter(_in_lookback(mine.ts, mine.scored_at, lookback_days))
    counts: dict[str, ir.Value] = {"n_touches": _.count(), "last_touch_at": _.ts.max()}
    channel_columns = _count_columns("n_channel_", channels)
    for name, value in channel_columns.items():
        counts[name] = _.count(where=_.channel == value)
    if channel_columns:
        counts["n_channel_other"] = _.count(where=~_.channel.isin(list(channel_columns.values())))
    for name, value in _count_columns("n_type_", touch_types).items():
        counts[name] = _.count(where=_.touch_type == value)
    return mine.group_by("person_id").aggregate(**counts)


def _count_columns(prefix: str, values: Sequence[str]) -> dict[str, str]:
    """Column name → category value, names made unique (``n_channel_paid_search``)."""
    out: dict[str, str] = {}
    for value in dict.fromkeys(str(v) for v in values):
        name = prefix + _slug(value)
        while name in out or name == f"{prefix}other":
            name += "_"
        out[name] = value
    return out


def _people_engaged(asof: ir.Table, touches: ir.Table, *, lookback_days: int) -> ir.Table:
    """Per lead: distinct people of its account (the lead included) with a marketing touch."""
    leads = asof.select(lead_id=_.person_id, account_id=_.account_id, scored_at=_.scored_at)
    account_touches = touches.filter(~_.is_sales_touch & _.account_id.notnull()).select(
        toucher_id=_.person_id, account_id=_.account_id, ts=_.ts
    )
    pairs = leads.join(account_touches, "account_id")
    return (
        pairs.filter(_in_lookback(pairs.ts, pairs.scored_at, lookback_days))
        .group_by(person_id=_.lead_id)
        .aggregate(n_people_engaged=_.toucher_id.nunique())
    )


def _asset_views(asof: ir.Table, asset_events: ir.Table, *, lookback_days: int) -> ir.Table:
    """Per lead: buyer asset events (views, downloads, prints, forwards) by the lead."""
    views = asset_events.filter(
        _.event_type.isin(list(BUYER_ASSET_EVENTS)) & _.person_id.notnull()
    ).select(person_id=_.person_id.cast("string"), ts=_.ts)
    mine = asof.select("person_id", "scored_at").join(views, "person_id")
    return (
        mine.filter(_in_lookback(mine.ts, mine.scored_at, lookback_days))
        .group_by("person_id")
        .aggregate(n_asset_views=_.count())
    )


def _outcomes(
    asof: ir.Table,
    stage_events: ir.Table,
    touches: ir.Table,
    *,
    outcome_stage: str,
    window_days: int,
) -> ir.Table:
    """Per lead: ``outcome_at`` (first outcome-stage event at or after ``lead_at``), the first
    disqualification in the window with its reason, and the first sales touch in the window."""
    stages = list(FUNNEL_STAGES[FUNNEL_STAGES.index(outcome_stage) :])
    window_end = _.scored_at + _days(window_days)
    events = stage_events.select(
        person_id=_.person_id.cast("string"),
        stage=_.stage,
        entered_at=_.entered_at,
        reason=(
            stage_events.reason.cast("string")
            if "reason" in stage_events.columns
            else ibis.null("string")
        ),
    )
    base = asof.select("person_id", "lead_at", "scored_at")
    reached = (
        base.join(events.filter(_.stage.isin(stages)), "person_id")
        .filter(_.entered_at >= _.lead_at)
        .group_by("person_id")
        .aggregate(outcome_at=_.entered_at.min())
    )
    disqualified = (
        base.join(events.filter(_.stage == "Disqualified"), "person_id")
        .filter((_.entered_at >= _.scored_at) & (_.entered_at <= window_end))
        .group_by("person_id")
        .aggregate(
            disqualified_at=_.entered_at.min(),
            disqualified_reason=_.reason.fill_null("(no reason)").argmin(_.entered_at),
        )
    )
    worked = (
        base.join(touches.filter(_.is_sales_touch).select("person_id", "ts"), "person_id")
        .filter((_.ts >= _.scored_at) & (_.ts <= window_end))
        .group_by("person_id")
        .aggregate(first_sales_touch_at=_.ts.min())
    )
    return (
        base.select("person_id")
        .left_join(reached, "person_id")
        .drop("person_id_right")
        .left_join(disqualified, "person_id")
        .drop("person_id_right")
        .left_join(worked, "person_id")
        .drop("person_id_right")
    )


def _fit_columns(people: ir.Table, accounts: ir.Table) -> ir.Table:
    """Per person: segment, industry, region, persona (nulls: ``(unknown)``) and the numeric
    columns of ``accounts`` as ``account_<name>``."""
    acct_cols: dict[str, ir.Value] = {"account_id": accounts.account_id.cast("string")}
    for name in ("segment", "industry", "region"):
        if name in accounts.columns:
            acct_cols[name] = accounts[name].cast("string").fill_null(UNKNOWN)
    for name, dtype in accounts.schema().items():
        if name in ("account_id",) or not dtype.is_numeric():
            continue
        acct_cols[f"account_{_slug(name)}"] = accounts[name].cast("float64")
    persons = people.select(
        person_id=_.person_id.cast("string"),
        account_id=_.account_id.cast("string"),
        persona=(
            people.persona.cast("string").fill_null(UNKNOWN)
            if "persona" in people.columns
            else ibis.literal(UNKNOWN)
        ),
    )
    joined = persons.left_join(accounts.select(**acct_cols), "account_id").drop(
        "account_id", "account_id_right"
    )
    fill = {
        name: joined[name].fill_null(UNKNOWN)
        for name in ("segment", "industry", "region")
        if name in joined.columns
    }
    return joined.mutate(**fill)


def build_lead_features(
    *,
    people: ir.Table,
    accounts: ir.Table,
    touchpoints: ir.Table,
    stage_events: ir.Table,
    asset_events: ir.Table | None = None,
    outcome_stage: str = "SQL",
    window_days: int = 90,
    horizon_days: int = 90,
    lookback_days: int = 90,
    channels: Sequence[str] = (),
    touch_types: Sequence[str] = (),
    observed_until: datetime | None = None,
) -> ir.Table:
    """One row per lead: the scoring instant, the current rule, the outcome and the features.

    Parameters
    ----------
    people, accounts, touchpoints, stage_events : ibis.Table
        Contract tables.
    asset_events : ibis.Table, optional
        When absent, ``n_asset_views`` is 0 for every lead (the fit then drops it as constant).
    outcome_stage : {"SQL", "Opportunity", "Customer"}
        Reaching this stage, or a later one, counts as converting.
    window_days : int
        Outcome window after ``scored_at``, in days of 24 h (default 90).
    horizon_days : int
        See :func:`build_lead_population` (default 90).
    lookback_days : int
        Touches and asset views older than this before ``scored_at`` are not counted.
    channels, touch_types : sequence of str
        Categories that get their own count column (``n_channel_<slug>``, ``n_type_<slug>``);
        usually the values of :func:`touch_categories`.
    observed_until : datetime, optional
        End of observation (UTC). Default: the last ``entered_at`` or touch ``ts`` in the data.

    Returns
    -------
    ibis.Table
        Identification and timing: ``person_id, account_id, lead_at, mql_at, scored_at,
        current_rule, observed_until, is_window_closed``.
        Outcome and closed loop, known only after ``scored_at`` and never model inputs:
        ``outcome_at, converted, converted_before_scoring, disqualified_at,
        disqualified_reason, first_sales_touch_at``.
        Features, known at ``scored_at`` (strictly before it): ``segment, industry, region,
        persona`` (text, nulls as ``(unknown)``), ``account_<name>`` (numeric account
        columns), ``n_touches`` and the per-category counts (marketing touches),
        ``days_since_last_touch`` (days, capped at ``lookback_days``, which it also takes when
        there is no touch), ``n_people_engaged`` (people of the account with a marketing touch,
        the lead included) and ``n_asset_views``.

    Notes
    -----
    All the work runs in the database; nothing is executed here. The leakage rule (events
    strictly before ``scored_at``) is tested with touches one second after and exactly at the
    MQL instant.
    """
    if outcome_stage not in OUTCOME_STAGES:
        raise ValueError(
            f"outcome_stage must be one of {', '.join(OUTCOME_STAGES)}; got {outcome_stage!r}"
        )
    for name, value in (("window_days", window_days), ("lookback_days", lookback_days)):
        if value <= 0:
            raise ValueError(f"{name} must be positive; got {value}")
    population = build_lead_population(stage_events, people, horizon_days=horizon_days)
    touches = _marketing_touches(touchpoints, people)
    if "touch_type" not in touchpoints.columns:
        touch_types = ()
    touch_feats = _touch_features(
        population,
        touches,
        lookback_days=lookback_days,
        channels=channels,
        touch_types=touch_types,
    )
    count_names = [
        *_count_columns("n_channel_", channels),
        *(["n_channel_other"] if channels else []),
        *_count_columns("n_type_", touch_types),
    ]
    engaged = _people_engaged(population, touches, lookback_days=lookback_days)
    fit = _fit_columns(people, accounts)
    outcomes = _outcomes(
        population, stage_events, touches, outcome_stage=outcome_stage, window_days=window_days
    )
    if observed_until is None:
        until = ibis.greatest(
            stage_events.entered_at.max().as_scalar(), touchpoints.ts.max().as_scalar()
        )
    else:
        until = ibis.timestamp(observed_until)

    out = population
    for part in (touch_feats, engaged, fit, outcomes):
        out = out.left_join(part, "person_id").drop("person_id_right")
    if asset_events is not None:
        views = _asset_views(population, asset_events, lookback_days=lookback_days)
        out = out.left_join(views, "person_id").drop("person_id_right")
    else:
        out = out.mutate(n_asset_views=ibis.literal(0, "int64"))
    seconds_since = out.scored_at.epoch_seconds() - out.last_touch_at.epoch_seconds()
    window_end = _.scored_at + _days(window_days)
    out = out.mutate(
        observed_until=until,
        is_window_closed=window_end <= until,
        converted=_.outcome_at.notnull()
        & (_.outcome_at >= _.scored_at)
        & (_.outcome_at <= window_end),
        converted_before_scoring=_.outcome_at.notnull() & (_.outcome_at < _.scored_at),
        days_since_last_touch=ibis.least(
            (seconds_since / SECONDS_PER_DAY).fill_null(float(lookback_days)),
            float(lookback_days),
        ),
        **{
            name: out[name].fill_null(0).cast("int64")
            for name in ("n_touches", *count_names, "n_people_engaged", "n_asset_views")
        },
    )
    out = out.drop("last_touch_at")
    leading = [*IDENTITY_COLUMNS, *OUTCOME_COLUMNS]
    return out.select(*leading, *[c for c in out.columns if c not in leading])


# --------------------------------------------------------------------------------------------
# pandas: quarters and the time-based split
# --------------------------------------------------------------------------------------------


def quarter_of(moments: pd.Series) -> pd.Series:
    """``YYYYQn`` of each UTC timestamp (naive values are taken as UTC)."""
    ts = pd.to_datetime(moments, utc=True)
    return ts.dt.year.astype("Int64").astype(str) + "Q" + ts.dt.quarter.astype("Int64").astype(str)


def _with_quarter(leads: pd.DataFrame) -> pd.DataFrame:
    if "quarter" in leads.columns:
        return leads
    return leads.assign(quarter=quarter_of(leads["scored_at"]))


def _is_evaluable(leads: pd.DataFrame) -> pd.Series:
    """Window closed and not converted before the scoring instant."""
    return leads["is_window_closed"].astype(bool) & ~leads["converted_before_scoring"].astype(bool)


@dataclass(frozen=True, slots=True)
class LeadSplit:
    """Leads split in time: fit on earlier quarters, evaluate on one quarter."""

    train: pd.DataFrame  # evaluable leads of the quarters before `quarter`
    test: pd.DataFrame  # evaluable leads of `quarter`
    quarter: str | None  # evaluation quarter (None when no quarter can be evaluated)
    report_quarter: str
    counts: pd.DataFrame  # per quarter: n_leads, n_window_open, n_converted_before_scoring, ...
    note: str | None = None  # why the evaluation quarter differs from the report quarter
    reason: str | None = None  # why nothing can be evaluated; None when the split is usable


def _quarter_is_complete(quarter: str, observed_until: pd.Timestamp, window_days: int) -> bool:
    """Every lead scored in ``quarter`` has its outcome window closed by ``observed_until``."""
    end = pd.Timestamp(Quarter.parse(quarter).end_at)
    return end + pd.Timedelta(days=window_days) <= observed_until


def split_leads_by_quarter(
    leads: pd.DataFrame, quarter: str, *, window_days: int = 90
) -> LeadSplit:
    """Fit on the quarters before the evaluation quarter, evaluate on it.

    Parameters
    ----------
    leads : pandas.DataFrame
        Executed :func:`build_lead_features`.
    quarter : str
        The report quarter, ``YYYYQn``.
    window_days : int
        The outcome window used to build ``leads``.

    Returns
    -------
    LeadSplit

    Notes
    -----
    A lead belongs to the quarter of its scoring instant. A quarter is *complete* when its last
    possible outcome window (quarter end + ``window_days``) has closed by ``observed_until``.
    The evaluation quarter is the report quarter when complete, else the latest complete
    quarter before it (``note`` says so: with a 90-day window the report quarter's leads are
    not yet judged when the data end with it). Leads with open windows and leads converted
    before their scoring instant are excluded and counted in ``counts``.
    """
    report = str(Quarter.parse(quarter))
    counts_cols = [
        "quarter",
        "n_leads",
        "n_window_open",
        "n_converted_before_scoring",
        "n_evaluable",
        "n_converted",
        "role",
    ]
    if leads.empty:
        empty = pd.DataFrame(columns=counts_cols)
        return LeadSplit(leads, leads, None, report, empty, reason="no leads in the data")
    # A database returns rows in no fixed order; sort so the fit and its bootstrap are
    # reproducible run to run (same inputs, same numbers).
    leads = _with_quarter(leads).sort_values("person_id", kind="stable").reset_index(drop=True)
    evaluable = _is_evaluable(leads)
    observed_until = pd.to_datetime(leads["observed_until"], utc=True).max()
    quarters = sorted(q for q in leads["quarter"].unique() if q <= report)
    complete = [q for q in quarters if _quarter_is_complete(q, observed_until, window_days)]
    chosen = complete[-1] if complete else None
    note = None
    if chosen is not None and chosen != report:
        note = (
            f"{report} leads' {window_days}-day outcome windows have not closed by "
            f"{observed_until:%Y-%m-%d}; evaluated on {chosen}, the latest quarter whose "
            "windows have all closed"
        )
    grouped = leads.assign(
        open=~leads["is_window_closed"].astype(bool),
        before=leads["converted_before_scoring"].astype(bool),
        evaluable=evaluable,
        conv=evaluable & leads["converted"].astype(bool),
    ).groupby("quarter")
    counts = (
        pd.DataFrame(
            {
                "n_leads": grouped.size(),
                "n_window_open": grouped["open"].sum(),
                "n_converted_before_scoring": grouped["before"].sum(),
                "n_evaluable": grouped["evaluable"].sum(),
                "n_converted": grouped["conv"].sum(),
            }
        )
        .astype("int64")
        .reset_index()
    )
    counts["role"] = [
        "evaluate"
        if q == chosen
        else "fit"
        if chosen is not None and q < chosen
        else "after the report quarter"
        if q > report
        else "not used"
        for q in counts["quarter"]
    ]
    counts = counts.loc[:, counts_cols]
    if chosen is None:
        reason = (
            f"no quarter up to {report} has all its {window_days}-day outcome windows closed "
            f"by {observed_until:%Y-%m-%d}"
        )
        return LeadSplit(leads.iloc[:0], leads.iloc[:0], None, report, counts, reason=reason)
    train = leads[evaluable & (leads["quarter"] < chosen)].reset_index(drop=True)
    test = leads[evaluable & (leads["quarter"] == chosen)].reset_index(drop=True)
    reason = None
    if train.empty:
        reason = f"no evaluable leads before {chosen} to fit on"
    elif test.empty:
        reason = f"no evaluable leads in {chosen}"
    return LeadSplit(train, test, chosen, report, counts, note=note, reason=reason)


# --------------------------------------------------------------------------------------------
# The model: design matrix, light ridge logistic regression, readable table
# --------------------------------------------------------------------------------------------


def feature_columns(leads: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The model inputs present in ``leads``: (categorical, numeric) column names.

    Categorical: ``segment, industry, region, persona``. Numeric: ``account_*``, ``n_*`` and
    ``days_since_last_touch``; ``n_touches`` is left out when ``n_channel_other`` is there
    (the channel counts then add up to it). Outcome and timing columns never match these names.
    """
    categorical = [c for c in FIT_COLUMNS if c in leads.columns]
    numeric = [
        c
        for c in leads.columns
        if (c.startswith(("n_", "account_")) or c == "days_since_last_touch")
        and pd.api.types.is_numeric_dtype(leads[c])
        and not pd.api.types.is_bool_dtype(leads[c])
    ]
    if "n_channel_other" in numeric:
        numeric.remove("n_touches")
    return categorical, numeric


@dataclass(frozen=True, slots=True)
class LeadDesign:
    """How lead features become model columns (learnt on the training leads only)."""

    levels: Mapping[str, tuple[str, ...]]  # categorical → non-reference levels kept
    references: Mapping[str, str]  # categorical → reference level (most frequent)
    numeric: tuple[str, ...]  # numeric features used
    caps: Mapping[str, float]  # numeric → upper cap (training quantile)
    columns: tuple[str, ...]  # model columns, Intercept first

    def recode(self, frame: pd.DataFrame, column: str) -> pd.Series:
        """Levels as in training: null → ``(unknown)``; unseen or rare → ``(other)`` when
        training had it, else the reference."""
        known = set(self.levels[column]) | {self.references[column]}
        fallback = OTHER if OTHER in known else self.references[column]
        values = frame[column].astype("object").where(frame[column].notna(), UNKNOWN).astype(str)
        return values.where(values.isin(known), fallback)

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model matrix for ``frame`` (float columns named as ``columns``)."""
        data: dict[str, np.ndarray] = {INTERCEPT: np.ones(len(frame))}
        for column, levels in self.levels.items():
            values = self.recode(frame, column).to_numpy()
            for level in levels:
                data[f"{column}[{level}]"] = (values == level).astype(float)
        for column in self.numeric:
            values = _as_float(frame[column]).to_numpy()
            data[column] = np.minimum(values, self.caps[column])
        return pd.DataFrame(data, index=frame.index).loc[:, list(self.columns)]


def _learn_design(
    train: pd.DataFrame,
    categorical: Sequence[str],
    numeric: Sequence[str],
    *,
    min_level_n: int,
    cap_quantile: float,
) -> tuple[LeadDesign, list[tuple[str, str]]]:
    """Levels, references and caps from ``train``; drop constant and collinear columns."""
    dropped: list[tuple[str, str]] = []
    levels: dict[str, tuple[str, ...]] = {}
    references: dict[str, str] = {}
    for column in categorical:
        values = train[column].astype("object").where(train[column].notna(), UNKNOWN).astype(str)
        counts = values.value_counts()
        rare = counts[counts < min_level_n].index
        values = values.where(~values.isin(rare), OTHER)
        counts = values.value_counts()
        if len(counts) < 2:
            dropped.append(
                (column, f"constant: every training lead has {column} = {counts.index[0]}")
            )
            continue
        ordered = sorted(counts.index, key=lambda level: (-counts[level], level))
        references[column] = ordered[0]
        levels[column] = tuple(sorted(ordered[1:]))
    caps: dict[str, float] = {}
    kept_numeric = []
    for column in numeric:
        values = _as_float(train[column])
        cap = float(values.quantile(cap_quantile))
        if cap <= values.min():  # all but a few leads share one value: use the maximum instead
            cap = float(values.max())
        if np.ptp(np.minimum(values.to_numpy(float), cap)) == 0:
            dropped.append(
                (column, f"constant: every training lead has {column} = {values.iloc[0]:g}")
            )
            continue
        caps[column] = cap
        kept_numeric.append(column)
    columns = (
        [INTERCEPT] + [f"{c}[{lv}]" for c, lvs in levels.items() for lv in lvs] + kept_numeric
    )
    design = LeadDesign(levels, references, tuple(kept_numeric), caps, tuple(columns))
    uncapped = LeadDesign(
        levels, references, tuple(kept_numeric), {c: np.inf for c in kept_numeric}, tuple(columns)
    )
    kept = _independent_columns(uncapped.matrix(train).to_numpy())  # exact relations, pre-cap
    if len(kept) < len(columns):
        removed = [columns[i] for i in range(len(columns)) if i not in kept]
        dropped.extend((name, "collinear with the features before it") for name in removed)
        removed_set = set(removed)
        levels = {
            c: tuple(lv for lv in lvs if f"{c}[{lv}]" not in removed_set)
            for c, lvs in levels.items()
        }
        kept_numeric = [c for c in kept_numeric if c not in removed_set]
        design = LeadDesign(
            levels,
            references,
            tuple(kept_numeric),
            {c: caps[c] for c in kept_numeric},
            tuple(c for c in columns if c not in removed_set),
        )
    return design, dropped


def _as_float(values: pd.Series) -> pd.Series:
    """A feature as floats: booleans as 0/1, missing or unparsable values as 0."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    return pd.to_numeric(values, errors="coerce").astype(float).fillna(0.0)


def _independent_columns(matrix: np.ndarray, tol: float = 1e-8) -> list[int]:
    """Indices of columns kept left to right, skipping any that the kept ones span."""
    kept: list[int] = []
    basis = np.zeros((matrix.shape[0], 0))
    for j in range(matrix.shape[1]):
        column = matrix[:, j]
        norm = np.linalg.norm(column)
        if norm == 0:
            continue
        residual = column - basis @ (basis.T @ column) if basis.shape[1] else column
        if np.linalg.norm(residual) > tol * norm * math.sqrt(matrix.shape[0]):
            kept.append(j)
            basis = np.column_stack([basis, residual / np.linalg.norm(residual)])
    return kept


def _display_unit(column: str, design: LeadDesign, scale: float) -> tuple[float, str]:
    """How one numeric coefficient is read: (multiplier of the raw unit, words)."""
    if column == "days_since_last_touch":
        return 7.0, "each extra week since the last touch"
    if column == "current_rule":
        return 1.0, "MQL rule fired (vs not)"
    if column.startswith("account_"):
        return (
            scale,
            f"one standard deviation ({scale:,.3g}) more {column.removeprefix('account_')}",
        )
    if column == "n_touches":
        return 1.0, "each extra marketing touch"
    if column == "n_people_engaged":
        return 1.0, "each extra person of the account engaged"
    if column == "n_asset_views":
        return 1.0, "each extra asset view"
    if column.startswith("n_channel_"):
        return 1.0, f"each extra {column.removeprefix('n_channel_')} touch"
    if column.startswith("n_type_"):
        return 1.0, f"each extra {column.removeprefix('n_type_')} touch"
    return 1.0, f"each extra unit of {column}"


@dataclass(frozen=True, slots=True)
class ScoreModelResult:
    """A fitted lead score: log-odds coefficients with standard errors (or why none).

    ``params`` and ``bse`` are per raw unit of each column of ``design`` (a dummy: the level
    against the reference; a count: per event). ``summary()`` rescales them to units a reader
    knows (per week since the last touch, per standard deviation of an account field).
    """

    params: pd.Series  # log-odds, index = design.columns
    cov: pd.DataFrame  # covariance of params
    design: LeadDesign | None
    regularisation: float  # L2 precision on standardised coefficients; 0: plain MLE
    n: int  # training leads
    n_converted: int
    method: str
    scales: pd.Series  # training standard deviation of each column (penalty scale)
    dropped: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["feature", "reason"])
    )  # features left out, and why
    reason: str | None = None  # why no model was fitted; None when fitted
    base_rate: float = 0.0  # training conversion rate (the score of an unfitted model)

    @property
    def is_fitted(self) -> bool:
        return self.reason is None

    @property
    def bse(self) -> pd.Series:
        """Standard errors of ``params`` (sandwich for the ridge; see ``method``)."""
        return pd.Series(np.sqrt(np.diag(self.cov.to_numpy())), index=self.params.index)

    @property
    def odds_ratios(self) -> pd.Series:
        return np.exp(self.params)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald interval of ``params``: columns ``low``, ``high`` (log-odds)."""
        from scipy.stats import norm

        z = norm.ppf(1 - alpha / 2)
        return pd.DataFrame(
            {"low": self.params - z * self.bse, "high": self.params + z * self.bse}
        )

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """Predicted conversion probability per row of ``frame`` (the base rate if unfitted)."""
        if not self.is_fitted or self.design is None:
            return pd.Series(self.base_rate, index=frame.index, dtype=float)
        eta = self.design.matrix(frame).to_numpy() @ self.params.to_numpy()
        return pd.Series(_expit(eta), index=frame.index)

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """The coefficient table leadership reads, one row per model column but the intercept.

        Columns: ``feature, level, reference, per`` (what one step is), ``coef`` and ``se``
        (log-odds per step), ``odds_ratio, or_low, or_high`` (Wald, ``1 - alpha``),
        ``p_value`` and ``reads`` ("segment ENT vs SMB: 2.10x the odds"). Empty when unfitted.
        """
        from scipy.stats import norm

        columns = [
            "feature",
            "level",
            "reference",
            "per",
            "coef",
            "se",
            "odds_ratio",
            "or_low",
            "or_high",
            "p_value",
            "reads",
        ]
        if not self.is_fitted or self.design is None:
            return pd.DataFrame(columns=columns)
        z = norm.ppf(1 - alpha / 2)
        rows = []
        for name in self.design.columns:
            if name == INTERCEPT:
                continue
            coef, se = float(self.params[name]), float(self.bse[name])
            match = re.fullmatch(r"(?P<feature>[^\[]+)\[(?P<level>.*)\]", name)
            if match:
                feature, level = match["feature"], match["level"]
                reference = self.design.references[feature]
                step, per = 1.0, f"{level} vs {reference}"
                lead_in = f"{feature} {level} vs {reference}"
            else:
                feature, level, reference = name, "", ""
                step, per = _display_unit(name, self.design, float(self.scales[name]))
                lead_in = per[0].upper() + per[1:]
            b, s = coef * step, se * step
            ratio = math.exp(b)
            rows.append(
                {
                    "feature": feature,
                    "level": level,
                    "reference": reference,
                    "per": per,
                    "coef": b,
                    "se": s,
                    "odds_ratio": ratio,
                    "or_low": math.exp(b - z * s),
                    "or_high": math.exp(b + z * s),
                    "p_value": float(2 * norm.sf(abs(b / s))) if s > 0 else 0.0,
                    "reads": f"{lead_in}: {ratio:.2f}x the odds",
                }
            )
        return pd.DataFrame(rows, columns=columns)


def _expit(eta: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(eta, float)))


def _unfitted(
    reason: str,
    n: int,
    n_converted: int,
    regularisation: float,
    dropped: list[tuple[str, str]] | None = None,
) -> ScoreModelResult:
    log.warning("lead score not fitted: %s", reason)
    empty = pd.Series(dtype=float)
    return ScoreModelResult(
        params=empty,
        cov=pd.DataFrame(),
        design=None,
        regularisation=regularisation,
        n=n,
        n_converted=n_converted,
        method="none",
        scales=empty,
        dropped=pd.DataFrame(dropped or [], columns=["feature", "reason"]),
        reason=reason,
        base_rate=n_converted / n if n else 0.0,
    )


def fit_lead_score(
    train: pd.DataFrame,
    *,
    regularisation: float = 1.0,
    outcome: str = "converted",
    categorical: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    min_level_n: int = 20,
    cap_quantile: float = 0.99,
    include_rule: bool = False,
    cluster: str | None = "account_id",
) -> ScoreModelResult:
    """Fit the lead score: a logistic regression with a light ridge penalty.

    Parameters
    ----------
    train : pandas.DataFrame
        One row per lead with the features and ``outcome`` (the training quarters of
        :func:`split_leads_by_quarter`).
    regularisation : float
        λ ≥ 0, the L2 penalty on the *standardised* coefficients: the fit maximises
        ``loglik(β) − λ/2 · Σ_j (sd_j β_j)²`` (intercept unpenalised), i.e. a Gaussian prior
        with variance ``1/λ`` on the log-odds per training standard deviation. 0 gives the
        plain maximum-likelihood fit.
    outcome : str
        Boolean outcome column.
    categorical, numeric : sequence of str, optional
        Features; default :func:`feature_columns`.
    min_level_n : int
        Levels with fewer training leads merge into ``(other)``.
    cap_quantile : float
        Numeric features are capped at this training quantile (a few leads with hundreds of
        e-mail opens would otherwise decide the slope).
    include_rule : bool
        Also use ``current_rule`` (did the MQL rule fire by the scoring instant) as a feature,
        when the frame has it. Off by default: the question is whether a score built from fit
        and engagement alone picks converting leads better than the rule, and a score that
        contains the rule cannot answer it (it would beat the rule partly by being the rule).
        On, the score measures what fit and engagement add to the rule; the rule's odds ratio
        then also holds the effect of being worked by sales (only MQLs were), so read it as
        the rule's weight in today's process, not as lead quality alone.
    cluster : str or None
        Column whose groups are not independent (default ``account_id``: leads of one
        account share its fit and its buying cycle). Standard errors are then cluster-robust
        by that column; leads with no value are their own group. None, or a column that is
        absent: model-based standard errors, leads taken as independent.

    Returns
    -------
    ScoreModelResult
        ``reason`` is set, and nothing fitted, when there are no training leads or they all
        share one outcome. Constant and exactly collinear features are dropped and listed.

    Notes
    -----
    λ = 0: statsmodels ``GLM(Binomial).fit()``, with ``cov_type="cluster"`` when clustered.
    λ > 0: statsmodels ``GLM.fit_regularized(L1_wt=0)`` with per-column penalty weights
    (a BFGS search), finished with Newton steps on the same penalised log-likelihood until
    the largest step is below 1e-10 (BFGS can stop short on counts of very different
    scales; Newton's method on this concave objective converges quadratically), and
    standard errors from the ridge sandwich ``H⁻¹ M H⁻¹`` with ``H = X'WX + λ·diag(sd²)``
    (the penalised information) [1]_ and ``M`` the variance of the score: ``X'WX`` for
    independent leads, or the sum over clusters of the outer products of their summed
    score contributions ``x_i (y_i − p_i)``, times statsmodels' small-sample factor
    ``G/(G−1) · (n−1)/(n−k)`` [2]_. They describe the sampling variability of the penalised
    estimate around its (slightly shrunk) target and ignore the shrinkage bias, which is
    small for the light default λ = 1 with hundreds of leads. Checked against statsmodels'
    own errors as λ → 0 (``tests/test_scoring.py``).

    References
    ----------
    .. [1] le Cessie, S. and van Houwelingen, J. C. (1992). Ridge estimators in logistic
       regression. *Applied Statistics* 41(1), 191-201.
    .. [2] Cameron, A. C. and Miller, D. L. (2015). A practitioner's guide to cluster-robust
       inference. *Journal of Human Resources* 50(2), 317-372.
    """
    import statsmodels.api as sm

    if regularisation < 0:
        raise ValueError(f"regularisation must be >= 0; got {regularisation}")
    if outcome not in train.columns:
        raise ValueError(f"outcome column {outcome!r} is not in the training frame")
    y = train[outcome].astype(bool).to_numpy()
    n, n_converted = len(y), int(y.sum())
    if n == 0:
        return _unfitted("no training leads", 0, 0, regularisation)
    if n_converted in (0, n):
        which = "none converted" if n_converted == 0 else "all converted"
        return _unfitted(
            f"all {n} training leads have the same outcome ({which}); a score needs both",
            n,
            n_converted,
            regularisation,
        )
    auto_cat, auto_num = feature_columns(train)
    categorical = list(auto_cat if categorical is None else categorical)
    numeric = list(auto_num if numeric is None else numeric)
    if include_rule and "current_rule" in train.columns and "current_rule" not in numeric:
        numeric.insert(0, "current_rule")
    design, dropped = _learn_design(
        train, categorical, numeric, min_level_n=min_level_n, cap_quantile=cap_quantile
    )
    if len(design.columns) == 1:
        return _unfitted(
            "every feature is constant in the training leads",
            n,
            n_converted,
            regularisation,
            dropped,
        )
    X = design.matrix(train)
    x = X.to_numpy()
    scales = pd.Series(x.std(axis=0), index=X.columns)
    scales[INTERCEPT] = 0.0
    groups = _cluster_codes(train, cluster)
    errors = (
        "model-based standard errors"
        if groups is None
        else f"standard errors cluster-robust by {cluster} ({groups.max() + 1:,} groups)"
    )
    model = sm.GLM(y.astype(float), x, family=sm.families.Binomial())
    if regularisation == 0:
        if groups is None:
            fit = model.fit()
        else:
            fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        params = np.asarray(fit.params)
        cov = np.asarray(fit.cov_params())
        method = f"logistic regression (statsmodels GLM), {errors}"
    else:
        penalty = regularisation * scales.to_numpy() ** 2  # in units of the summed log-lik
        fit = model.fit_regularized(alpha=penalty / n, L1_wt=0.0, maxiter=200)
        params = np.asarray(fit.params, dtype=float)
        for _step in range(50):  # Newton polish: gradient and Hessian of the penalised fit
            mu = _expit(x @ params)
            information = (x * (mu * (1 - mu))[:, None]).T @ x
            hessian = information + np.diag(penalty)
            step = np.linalg.solve(hessian, x.T @ (y - mu) - penalty * params)
            params = params + step
            if np.max(np.abs(step)) < 1e-10:
                break
        mu = _expit(x @ params)
        information = (x * (mu * (1 - mu))[:, None]).T @ x
        hessian = information + np.diag(penalty)
        inverse = np.linalg.inv(hessian)
        if groups is None:
            meat = information
        else:
            meat = _cluster_meat(x * (y - mu)[:, None], groups)
        cov = inverse @ meat @ inverse
        gradient = x.T @ (y - mu) - penalty * params
        if np.max(np.abs(gradient)) > 1e-3 * max(1.0, math.sqrt(n)):
            log.warning(
                "ridge fit may not have converged: max |gradient| %.3g", np.abs(gradient).max()
            )
        method = (
            f"ridge logistic regression (statsmodels GLM.fit_regularized, λ={regularisation:g} on "
            f"standardised coefficients); sandwich {errors}"
        )
    return ScoreModelResult(
        params=pd.Series(params, index=X.columns),
        cov=pd.DataFrame(cov, index=X.columns, columns=X.columns),
        design=design,
        regularisation=regularisation,
        n=n,
        n_converted=n_converted,
        method=method,
        scales=scales,
        dropped=pd.DataFrame(dropped, columns=["feature", "reason"]),
        base_rate=n_converted / n,
    )


def _cluster_codes(frame: pd.DataFrame, cluster: str | None) -> np.ndarray | None:
    """Group codes 0..G-1 of ``cluster`` (a missing value: its own group); None when there is
    no such column or fewer than two groups."""
    if cluster is None or cluster not in frame.columns:
        return None
    values = frame[cluster].astype("object")
    own = pd.Series([f"\0row{i}" for i in range(len(frame))], index=frame.index)
    codes, uniques = pd.factorize(values.where(values.notna(), own))
    return codes if len(uniques) >= 2 else None


def _cluster_meat(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Σ_g (Σ_{i∈g} s_i)(Σ_{i∈g} s_i)' with statsmodels' correction G/(G−1)·(n−1)/(n−k)."""
    n, k = scores.shape
    n_groups = int(groups.max()) + 1
    sums = np.zeros((n_groups, k))
    np.add.at(sums, groups, scores)
    factor = n_groups / (n_groups - 1) * (n - 1) / (n - k)
    return factor * sums.T @ sums


def assign_deciles(score: pd.Series | np.ndarray) -> np.ndarray:
    """Decile 1 = the highest 10 % of scores … 10 = the lowest; tied scores share a decile.

    ``decile = floor(10 · (r − 1) / n) + 1`` with ``r`` the rank from the top, ties given
    their best rank, so a constant score puts every lead in decile 1.

    Examples
    --------
    >>> assign_deciles(np.array([0.9, 0.1, 0.5, 0.5])).tolist()
    [1, 8, 3, 3]
    """
    values = np.asarray(score, dtype=float)
    if values.size == 0:
        return np.zeros(0, dtype=int)
    rank = pd.Series(-values).rank(method="min").to_numpy()
    return (np.floor(10 * (rank - 1) / values.size) + 1).astype(int)


def score_leads(model: ScoreModelResult, leads: pd.DataFrame) -> pd.DataFrame:
    """Score every lead: the ``lead_scores`` columns plus what the evaluation needs.

    Returns
    -------
    pandas.DataFrame
        :data:`LEAD_SCORE_COLUMNS` first (``score`` is the predicted conversion probability;
        ``decile`` is within the lead's quarter, 1 = best; ``converted`` is ``<NA>`` while the
        window is open), then ``converted_before_scoring, is_evaluable, disqualified_reason,
        first_sales_touch_at``.
    """
    leads = _with_quarter(leads).sort_values("person_id", kind="stable").reset_index(drop=True)
    scores = model.predict(leads)
    out = pd.DataFrame(
        {
            "person_id": leads["person_id"].astype(str),
            "mql_at": leads["mql_at"],
            "score": scores.astype(float),
            "decile": 0,
            "current_rule": leads["current_rule"].astype(bool),
            "converted": leads["converted"]
            .astype("boolean")
            .where(leads["is_window_closed"].astype(bool), pd.NA),
            "scored_at": leads["scored_at"],
            "quarter": leads["quarter"].astype(str),
            "region": leads["region"].astype(str) if "region" in leads else UNKNOWN,
            "is_window_closed": leads["is_window_closed"].astype(bool),
            "converted_before_scoring": leads["converted_before_scoring"].astype(bool),
            "is_evaluable": _is_evaluable(leads),
            "disqualified_reason": leads.get(
                "disqualified_reason", pd.Series(pd.NA, index=leads.index)
            ),
            "first_sales_touch_at": leads.get(
                "first_sales_touch_at",
                pd.Series(pd.NaT, index=leads.index, dtype="datetime64[us, UTC]"),
            ),
        }
    )
    for _quarter, index in out.groupby("quarter").groups.items():
        out.loc[index, "decile"] = assign_deciles(out.loc[index, "score"].to_numpy())
    out["decile"] = out["decile"].astype("int64")
    return out


# --------------------------------------------------------------------------------------------
# Evaluation: AUC with a bootstrap interval, calibration, gain, the current rule
# --------------------------------------------------------------------------------------------


def compute_auc(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series) -> float:
    """Area under the ROC curve: P(score of a converter > score of a non-converter), ties ½.

    Computed as the trapezoid area under the ROC curve with tied scores grouped (no ranks);
    NaN when either class is empty.

    Examples
    --------
    >>> compute_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1]))
    0.75
    """
    y = np.asarray(y, dtype=bool)
    s = np.asarray(score, dtype=float)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    group_ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s.size - 1]
    tps = np.cumsum(y_sorted)[group_ends]
    fps = group_ends + 1 - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def bootstrap_auc(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired bootstrap replicates of the AUC of each score: one row per resample of leads.

    Resamples lacking a class are skipped (their AUC is undefined). Columns are the keys
    of ``scores``.
    """
    y = np.asarray(y, dtype=bool)
    rng = np.random.default_rng(seed)
    rows = []
    for _i in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        yb = y[idx]
        if yb.all() or not yb.any():
            continue
        rows.append({name: compute_auc(yb, np.asarray(s)[idx]) for name, s in scores.items()})
    return pd.DataFrame(rows, columns=list(scores))


def _wilson(k: np.ndarray, n: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    return np.asarray(low, float), np.asarray(high, float)


def calibration_table(
    y: np.ndarray, predicted: np.ndarray, *, n_bins: int = 10, alpha: float = 0.05
) -> pd.DataFrame:
    """Reliability table: leads in equal-count bins of predicted probability.

    Columns ``bin`` (1 = lowest predictions), ``n, mean_predicted, observed_rate,
    observed_low, observed_high`` (Wilson interval, ``1 - alpha``). A well-calibrated score
    has ``mean_predicted`` inside the observed interval.
    """
    columns = ["bin", "n", "mean_predicted", "observed_rate", "observed_low", "observed_high"]
    y = np.asarray(y, dtype=bool)
    p = np.asarray(predicted, dtype=float)
    if y.size == 0:
        return pd.DataFrame(columns=columns)
    order = pd.Series(p).rank(method="first").to_numpy()
    bins = np.ceil(n_bins * order / y.size).astype(int)
    frame = pd.DataFrame({"bin": bins, "y": y, "p": p}).groupby("bin")
    table = pd.DataFrame(
        {"n": frame.size(), "mean_predicted": frame["p"].mean(), "k": frame["y"].sum()}
    ).reset_index()
    table["observed_rate"] = table["k"] / table["n"]
    table["observed_low"], table["observed_high"] = _wilson(
        table["k"].to_numpy(), table["n"].to_numpy(), alpha
    )
    return table.loc[:, columns].astype({"n": "int64"})


def gain_table(y: np.ndarray, score: np.ndarray, rule: np.ndarray | None = None) -> pd.DataFrame:
    """Gain and lift by score decile (1 = best 10 %).

    Columns ``decile, n, n_converted, conversion_rate, lift`` (rate / overall rate),
    ``cum_share_leads, cum_share_converted`` (the gain curve: share of all converters found
    in the deciles down to this one), ``mean_score`` and, given ``rule``, ``rule_share``
    (share of the decile's leads the current rule sends).
    """
    y = np.asarray(y, dtype=bool)
    columns = [
        "decile",
        "n",
        "n_converted",
        "conversion_rate",
        "lift",
        "cum_share_leads",
        "cum_share_converted",
        "mean_score",
    ] + (["rule_share"] if rule is not None else [])
    if y.size == 0:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame({"decile": assign_deciles(score), "y": y, "s": np.asarray(score, float)})
    if rule is not None:
        frame["r"] = np.asarray(rule, dtype=bool)
    grouped = frame.groupby("decile")
    table = pd.DataFrame(
        {"n": grouped.size(), "n_converted": grouped["y"].sum(), "mean_score": grouped["s"].mean()}
    ).reset_index()
    overall = y.mean()
    table["conversion_rate"] = table["n_converted"] / table["n"]
    table["lift"] = table["conversion_rate"] / overall if overall > 0 else 0.0
    table["cum_share_leads"] = table["n"].cumsum() / y.size
    table["cum_share_converted"] = table["n_converted"].cumsum() / y.sum() if y.sum() > 0 else 0.0
    if rule is not None:
        table["rule_share"] = grouped["r"].mean().to_numpy()
    return table.loc[:, columns].astype({"n": "int64", "n_converted": "int64"})


def _top_k_mask(score: np.ndarray, k: int) -> np.ndarray:
    """The leads whose score is at least the ``k``-th highest (ties included)."""
    if k <= 0:
        return np.zeros(score.size, dtype=bool)
    cut = np.sort(score)[::-1][min(k, score.size) - 1]
    return score >= cut


def _decision_metrics(y: np.ndarray, sent: np.ndarray) -> dict[str, float]:
    n_sent, n_conv = int(sent.sum()), int(y.sum())
    hits = int((y & sent).sum())
    return {
        "n_sent": n_sent,
        "n_converted_sent": hits,
        "flagged_share": n_sent / y.size if y.size else 0.0,
        "precision": hits / n_sent if n_sent else 0.0,
        "recall": hits / n_conv if n_conv else 0.0,
        "missed_share": 1 - hits / n_conv if n_conv else 0.0,
    }


@dataclass(frozen=True, slots=True)
class ScoreEvaluation:
    """How well the score and the current MQL rule rank one quarter's leads."""

    quarter: str | None
    n: int  # evaluable leads
    n_converted: int
    auc: float  # model
    auc_ci_low: float
    auc_ci_high: float
    rule_auc: float  # current rule as a yes/no score (ties count ½)
    rule_auc_ci_low: float
    rule_auc_ci_high: float
    auc_diff_ci_low: float  # paired bootstrap interval of auc - rule_auc
    auc_diff_ci_high: float
    rule: Mapping[str, float]  # current rule: n_sent, precision, recall, missed_share, ...
    model_at_rule_volume: Mapping[str, float]  # the score's top leads, as many as the rule sends
    calibration: pd.DataFrame  # calibration_table
    gain: pd.DataFrame  # gain_table with rule_share
    n_boot: int
    alpha: float
    reason: str | None = None  # why nothing could be evaluated

    def conf_int(self) -> pd.DataFrame:
        """AUC intervals: rows ``model, current_rule``; columns ``low, high``."""
        return pd.DataFrame(
            {
                "low": [self.auc_ci_low, self.rule_auc_ci_low],
                "high": [self.auc_ci_high, self.rule_auc_ci_high],
            },
            index=["model", "current_rule"],
        )

    def summary(self) -> pd.DataFrame:
        """The ``scoring_metrics`` table: one row per scorer (``model``, ``current_rule``).

        Columns ``scorer, quarter, n, n_converted, auc, auc_ci_low, auc_ci_high, n_sent,
        precision, recall, missed_share``; the model's decision metrics are for its top leads,
        as many as the rule sends. Empty when ``reason`` is set.
        """
        columns = [
            "scorer",
            "quarter",
            "n",
            "n_converted",
            "auc",
            "auc_ci_low",
            "auc_ci_high",
            "n_sent",
            "precision",
            "recall",
            "missed_share",
        ]
        if self.reason is not None:
            return pd.DataFrame(columns=columns)
        rows = []
        for scorer, auc, low, high, metrics in (
            ("model", self.auc, self.auc_ci_low, self.auc_ci_high, self.model_at_rule_volume),
            (
                "current_rule",
                self.rule_auc,
                self.rule_auc_ci_low,
                self.rule_auc_ci_high,
                self.rule,
            ),
        ):
            rows.append(
                {
                    "scorer": scorer,
                    "quarter": self.quarter,
                    "n": self.n,
                    "n_converted": self.n_converted,
                    "auc": auc,
                    "auc_ci_low": low,
                    "auc_ci_high": high,
                    "n_sent": int(metrics["n_sent"]),
                    "precision": metrics["precision"],
                    "recall": metrics["recall"],
                    "missed_share": metrics["missed_share"],
                }
            )
        return pd.DataFrame(rows, columns=columns)


def _evaluation_population(scored: pd.DataFrame, quarter: str | None) -> pd.DataFrame:
    frame = scored[scored["is_evaluable"].astype(bool)]
    if quarter is not None:
        frame = frame[frame["quarter"] == quarter]
    return frame.reset_index(drop=True)


def _degenerate_reason(y: np.ndarray, what: str) -> str | None:
    if y.size == 0:
        return f"no evaluable leads in {what}"
    if not y.any():
        return f"no converted leads among the {y.size} evaluable leads of {what}"
    if y.all():
        return f"every one of the {y.size} evaluable leads of {what} converted"
    return None


def evaluate_scores(
    scored: pd.DataFrame,
    *,
    quarter: str | None = None,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> ScoreEvaluation:
    """AUC (bootstrap interval), calibration and gain of the score; the same for the rule.

    Parameters
    ----------
    scored : pandas.DataFrame
        :func:`score_leads` output; only evaluable leads (window closed, not converted before
        scoring) count.
    quarter : str, optional
        Evaluate this quarter's leads only (the held-out quarter).
    n_boot : int
        Bootstrap resamples of leads (paired across model and rule); 0 skips intervals.
    alpha : float
        Intervals are ``1 - alpha`` percentile intervals.
    seed : int
        Seed of the resampling.

    Returns
    -------
    ScoreEvaluation
        With ``reason`` set (and NaN AUCs, empty tables) when the leads are all of one class
        or there are none.

    Notes
    -----
    The current rule is a yes/no score, so its AUC is ``(TPR + TNR) / 2``. Checked against
    the Mann-Whitney U statistic of scipy (``U / (n₁ n₀)``) in the tests.
    """
    frame = _evaluation_population(scored, quarter)
    y = frame["converted"].astype(bool).to_numpy()
    what = quarter or "the data"
    reason = _degenerate_reason(y, what)
    nan = float("nan")
    if reason is not None:
        return ScoreEvaluation(
            quarter,
            int(y.size),
            int(y.sum()),
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            {},
            {},
            calibration_table(y[:0], y[:0]),
            gain_table(y[:0], y[:0], y[:0]),
            n_boot,
            alpha,
            reason=reason,
        )
    score = frame["score"].to_numpy(float)
    rule = frame["current_rule"].astype(bool).to_numpy()
    auc, rule_auc = compute_auc(y, score), compute_auc(y, rule.astype(float))
    lows = {"model": nan, "rule": nan, "diff": nan}
    highs = dict(lows)
    if n_boot > 0:
        draws = bootstrap_auc(
            y, {"model": score, "rule": rule.astype(float)}, n_boot=n_boot, seed=seed
        )
        draws["diff"] = draws["model"] - draws["rule"]
        q = draws.quantile([alpha / 2, 1 - alpha / 2])
        lows, highs = q.iloc[0].to_dict(), q.iloc[1].to_dict()
    rule_metrics = _decision_metrics(y, rule)
    model_metrics = _decision_metrics(y, _top_k_mask(score, int(rule.sum())))
    return ScoreEvaluation(
        quarter=quarter,
        n=int(y.size),
        n_converted=int(y.sum()),
        auc=auc,
        auc_ci_low=lows["model"],
        auc_ci_high=highs["model"],
        rule_auc=rule_auc,
        rule_auc_ci_low=lows["rule"],
        rule_auc_ci_high=highs["rule"],
        auc_diff_ci_low=lows["diff"],
        auc_diff_ci_high=highs["diff"],
        rule=rule_metrics,
        model_at_rule_volume=model_metrics,
        calibration=calibration_table(y, score, alpha=alpha),
        gain=gain_table(y, score, rule),
        n_boot=n_boot,
        alpha=alpha,
    )


@dataclass(frozen=True, slots=True)
class RuleComparison:
    """The score against the current rule at equal volume: as many leads as the rule sends."""

    quarter: str | None
    n: int
    n_converted: int
    rule: Mapping[str, float]  # n_sent, n_converted_sent, precision, recall, missed_share
    model: Mapping[str, float]  # the same for the score's top leads
    sqls_gained: float  # converted leads the score sends minus those the rule sends
    sqls_gained_ci_low: float
    sqls_gained_ci_high: float
    threshold: float  # lowest score sent
    alpha: float
    reason: str | None = None

    def summary(self) -> pd.DataFrame:
        """One row per policy: ``policy, n_sent, n_converted_sent, precision, recall,
        missed_share``, then the gain row's interval in ``sqls_gained*`` columns."""
        columns = [
            "policy",
            "n_sent",
            "n_converted_sent",
            "precision",
            "recall",
            "missed_share",
            "sqls_gained",
            "sqls_gained_ci_low",
            "sqls_gained_ci_high",
        ]
        if self.reason is not None:
            return pd.DataFrame(columns=columns)
        rows = [
            {
                "policy": "current MQL rule",
                **self.rule,
                "sqls_gained": 0.0,
                "sqls_gained_ci_low": 0.0,
                "sqls_gained_ci_high": 0.0,
            },
            {
                "policy": f"score ≥ {self.threshold:.3f} (same volume)",
                **self.model,
                "sqls_gained": self.sqls_gained,
                "sqls_gained_ci_low": self.sqls_gained_ci_low,
                "sqls_gained_ci_high": self.sqls_gained_ci_high,
            },
        ]
        return pd.DataFrame(rows).loc[:, columns]


def _bootstrap_sum(
    values: np.ndarray, *, n_boot: int, seed: int, alpha: float, strata: np.ndarray | None = None
) -> tuple[float, float]:
    """Percentile interval of ``values.sum()`` over resamples of rows (within strata)."""
    if n_boot <= 0 or values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    strata = np.zeros(values.size, dtype=int) if strata is None else strata
    totals = np.zeros(n_boot)
    for stratum in np.unique(strata):
        part = values[strata == stratum]
        idx = rng.integers(0, part.size, (n_boot, part.size))
        totals += part[idx].sum(axis=1)
    low, high = np.quantile(totals, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def compare_with_current_rule(
    scored: pd.DataFrame,
    *,
    quarter: str | None = None,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> RuleComparison:
    """Send as many leads as the current rule, the best-scored ones: what changes?

    Returns
    -------
    RuleComparison
        Precision, recall and missed share of each policy, and the converted leads the score
        gains (negative: loses) with a bootstrap interval (leads resampled, the threshold held
        fixed).

    Notes
    -----
    Observed outcomes are compared. Leads the rule did not send were not worked, so their
    conversion understates what working them would give: the gain is a lower bound.
    """
    frame = _evaluation_population(scored, quarter)
    y = frame["converted"].astype(bool).to_numpy()
    what = quarter or "the data"
    reason = _degenerate_reason(y, what)
    nan = float("nan")
    if reason is None and not frame["current_rule"].astype(bool).any():
        reason = f"the current rule sent none of the {y.size} leads of {what}"
    if reason is not None:
        return RuleComparison(
            quarter, int(y.size), int(y.sum()), {}, {}, nan, nan, nan, nan, alpha, reason=reason
        )
    score = frame["score"].to_numpy(float)
    rule = frame["current_rule"].astype(bool).to_numpy()
    sent = _top_k_mask(score, int(rule.sum()))
    gained = y.astype(float) * (sent.astype(float) - rule.astype(float))
    low, high = _bootstrap_sum(gained, n_boot=n_boot, seed=seed, alpha=alpha)
    return RuleComparison(
        quarter=quarter,
        n=int(y.size),
        n_converted=int(y.sum()),
        rule=_decision_metrics(y, rule),
        model=_decision_metrics(y, sent),
        sqls_gained=float(gained.sum()),
        sqls_gained_ci_low=low,
        sqls_gained_ci_high=high,
        threshold=float(score[sent].min()),
        alpha=alpha,
    )


# --------------------------------------------------------------------------------------------
# Capacity-aware threshold
# --------------------------------------------------------------------------------------------

BUSINESS_WEEK_HOURS = 120.0  # Monday to Friday, 24 h a day (the funnel's business clock)
WEEK_HOURS = 168.0
BUSINESS_DAYS_PER_WEEK = 5
MAX_EXACT_CUTS = 2_000  # beyond this many candidate cuts, the queue is run on a grid of cuts


def _capacity_by_region(
    users: pd.DataFrame | None, *, teams: Sequence[str] = ("sdr",)
) -> tuple[pd.DataFrame, str | None]:
    """Capacity per region: ``region, capacity_leads_per_week, n_users``; and a note.

    The users of ``teams`` (default SDRs, who work MQLs; if none have a capacity, sales) are
    summed by region. An empty frame and the reason when capacity is unknown.
    """
    columns = ["region", "capacity_leads_per_week", "n_users"]
    if users is None or users.empty:
        return pd.DataFrame(columns=columns), "capacity unknown: no users table in this export"
    if "capacity_leads_per_week" not in users.columns:
        return pd.DataFrame(
            columns=columns
        ), "capacity unknown: users has no capacity_leads_per_week"
    known = users[users["capacity_leads_per_week"].notna()]
    chosen = known[known["team"].isin(list(teams))]
    note = None
    if chosen.empty:
        chosen = known[known["team"] == "sales"]
        note = f"no {'/'.join(teams)} users with a capacity; sales users' capacity used"
    if chosen.empty:
        return pd.DataFrame(
            columns=columns
        ), "capacity unknown: no user has a capacity_leads_per_week"
    region = (
        chosen["region"].astype("object").where(chosen["region"].notna(), UNKNOWN)
        if "region" in chosen
        else UNKNOWN
    )
    table = (
        chosen.assign(region=region)
        .groupby("region")
        .agg(
            capacity_leads_per_week=("capacity_leads_per_week", "sum"),
            n_users=("user_id", "count"),
        )
        .reset_index()
    )
    return table.astype({"capacity_leads_per_week": float, "n_users": "int64"}), note


def _queue_waits(arrivals: np.ndarray, service_hours: float) -> np.ndarray:
    """Waits (hours until work starts) of leads served first in first out, one at a time.

    ``arrivals`` are sorted arrival positions in hours; each lead takes ``service_hours`` of
    the team's time. Lindley's recursion ``W_j = max(0, W_(j-1) + s − (a_j − a_(j-1)))`` in
    closed form: work on lead ``j`` starts at ``max_(i≤j) (a_i + (j − i)·s)``.
    """
    if arrivals.size == 0:
        return arrivals.astype(float)
    if not np.isfinite(service_hours):  # no capacity: no lead is ever started
        return np.full(arrivals.size, np.inf)
    steps = np.arange(arrivals.size) * service_hours
    start = np.maximum.accumulate(arrivals - steps) + steps
    return start - arrivals


def _late_counts(
    arrivals: np.ndarray,
    order: np.ndarray,
    service_hours: float,
    sla_hours: float,
    ks: np.ndarray | None = None,
) -> np.ndarray:
    """How many of the top-k leads would wait beyond the SLA, for each k in ``ks``.

    ``arrivals`` holds each lead's arrival position in hours; ``order`` lists the leads best
    first (the top-k are ``order[:k]``); ``ks`` defaults to every k = 0..n. The top-k leads
    are queued in arrival order (:func:`_queue_waits`) and a lead is late when its wait
    exceeds ``sla_hours`` (a wait of exactly the SLA is within it).
    """
    n = order.size
    ks = np.arange(n + 1) if ks is None else np.asarray(ks, dtype=int)
    by_arrival = np.argsort(arrivals, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    rank_by_arrival, sorted_arrivals = rank[by_arrival], arrivals[by_arrival].astype(float)
    late = np.zeros(ks.size)
    for i, k in enumerate(ks):
        waits = _queue_waits(sorted_arrivals[rank_by_arrival < k], service_hours)
        late[i] = np.count_nonzero(waits > sla_hours + 1e-9)
    return late


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """Score thresholds that keep each region's sales team within capacity and the SLA."""

    quarter: str | None
    by_region: pd.DataFrame  # one row per region (see summary)
    capacity_known: bool
    sla_hours: float
    business_hours: bool
    max_late_share: float
    n_weeks: float  # weeks of lead flow measured
    sqls_gained: float  # total over regions with known capacity
    sqls_gained_ci_low: float
    sqls_gained_ci_high: float
    alpha: float
    note: str | None = None
    reason: str | None = None  # why no threshold could be set

    def summary(self) -> pd.DataFrame:
        """Per region and in total: capacity, the threshold, leads per week sent by the score
        and by the rule, the share of each that would miss the SLA, converted leads of each
        and the gain with its interval; ``note`` says why a cell is empty.

        The ``total`` row sums the regions with a known capacity (late shares pooled over
        their leads); it has no threshold, since each region has its own.
        """
        if self.by_region.empty:
            return self.by_region
        table = self.by_region.copy()
        if not self.capacity_known:  # only the rule's flow can be shown
            table = table.loc[:, ["region", "rule_leads_per_week", "rule_converted"]]
            total = {
                "region": "total",
                "rule_leads_per_week": table["rule_leads_per_week"].sum(),
                "rule_converted": table["rule_converted"].sum(),
            }
            return pd.concat([table, pd.DataFrame([total])], ignore_index=True)
        known = table[table["capacity_leads_per_week"].notna()]
        if len(table) > 1 and len(known):
            sent = known["score_leads_per_week"]
            rule_sent = known["rule_leads_per_week"]
            total = {
                "region": "total",
                "capacity_leads_per_week": known["capacity_leads_per_week"].sum(),
                "capacity_leads_per_day": known["capacity_leads_per_day"].sum(),
                "threshold": np.nan,
                "score_leads_per_week": sent.sum(),
                "score_late_share": (known["score_late_share"] * sent).sum() / sent.sum()
                if sent.sum() > 0
                else 0.0,
                "rule_leads_per_week": rule_sent.sum(),
                "rule_late_share": (known["rule_late_share"] * rule_sent).sum() / rule_sent.sum()
                if rule_sent.sum() > 0
                else 0.0,
                "score_converted": known["score_converted"].sum(),
                "rule_converted": known["rule_converted"].sum(),
                "sqls_gained": self.sqls_gained,
                "sqls_gained_ci_low": self.sqls_gained_ci_low,
                "sqls_gained_ci_high": self.sqls_gained_ci_high,
                "note": "; ".join(
                    [
                        "regions with a known capacity"
                        + ("" if len(known) == len(table) else " only")
                        + "; no threshold: each region has its own",
                        *(
                            ["no bootstrap interval (n_boot = 0)"]
                            if np.isnan(self.sqls_gained_ci_low)
                            else []
                        ),
                    ]
                ),
            }
            table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
        return table


def choose_capacity_threshold(
    scored: pd.DataFrame,
    users: pd.DataFrame | None,
    *,
    quarter: str | None = None,
    sla_hours: float = 24.0,
    business_hours: bool = True,
    max_late_share: float = 0.05,
    teams: Sequence[str] = ("sdr",),
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> ThresholdResult:
    """The lowest score threshold per region whose leads sales can work within the SLA.

    Parameters
    ----------
    scored : pandas.DataFrame
        :func:`score_leads` output; the evaluable leads of ``quarter`` are the flow measured.
    users : pandas.DataFrame or None
        The ``users`` table (None when absent: capacity unknown, only the rule's flow shown).
    quarter : str, optional
        The quarter whose lead flow is measured (the evaluation quarter).
    sla_hours : float
        Time allowed from the lead's arrival (its scoring instant) to the start of sales work
        on it (the first sales touch), in hours.
    business_hours : bool
        Count arrivals, work and the SLA on the Mon-Fri clock (as the funnel does) or in
        elapsed hours.
    max_late_share : float
        Share of the leads sent that may wait beyond the SLA (default 5 %).
    teams : sequence of str
        Users whose capacity works the leads: SDRs by default (they work MQLs); sales when no
        SDR has a capacity.
    n_boot, alpha, seed : int, float, int
        Bootstrap of the converted-lead gain (leads resampled within region, thresholds fixed).

    Returns
    -------
    ThresholdResult
        ``by_region``: ``region, capacity_leads_per_week, capacity_leads_per_day, threshold,
        score_leads_per_week, score_late_share, rule_leads_per_week, rule_late_share,
        score_converted, rule_converted, sqls_gained, sqls_gained_ci_low,
        sqls_gained_ci_high, note`` (score against the rule as it was, its late leads
        included; ``note`` says why a cell is empty).

    Notes
    -----
    The rule. A region's SDRs work ``capacity_leads_per_week / 5`` leads per business day,
    one after another in arrival order (first in, first out): each lead takes
    ``s = 24 h / (capacity_leads_per_week / 5)`` of the team's time on the business clock
    (Mon-Fri, 24 h a day, so a weekend arrival waits for Monday), or ``s = 168 h /
    capacity_leads_per_week`` on the elapsed clock. Leads arrive at their scoring instant;
    the queue starts empty at the start of the quarter. A lead's wait is the time from its
    arrival to the start of work on it (Lindley's recursion [1]_, :func:`_queue_waits`), and
    it is **late** when the wait exceeds ``sla_hours``. For each region, leads are sent from
    the best score down, and the threshold is the lowest score (a cut between distinct
    scores) at which at most ``max_late_share`` of the leads sent are late. Waits do not
    depend on the SLA, so a shorter SLA makes every set of leads at least as late and never
    allows more leads; the same queue gives the current rule's late share. With more than
    2,000 candidate cuts in a region, only an even grid of 2,000 of them is tried: the
    threshold is then the best cut on the grid, feasible but possibly sending a few leads
    fewer than the best of all cuts (``note`` says so). The queue is a single server with
    the team's pooled rate: several SDRs working in parallel take a lead up slightly sooner
    when the queue is short. Leads from other sources that also need the team are not in
    the queue, so the capacity left for scored leads is, if anything, smaller. Converted
    leads are observed outcomes: leads the rule did not send were not worked, so the gain is
    conservative. Checked against a lead-by-lead simulation and hand-computed queues in
    ``tests/test_scoring.py``.

    References
    ----------
    .. [1] Lindley, D. V. (1952). The theory of queues with a single server. *Mathematical
       Proceedings of the Cambridge Philosophical Society* 48(2), 277-289.
    """
    if sla_hours <= 0:
        raise ValueError(f"sla_hours must be positive; got {sla_hours}")
    if not 0 <= max_late_share < 1:
        raise ValueError(f"max_late_share must be in [0, 1); got {max_late_share}")
    frame = _evaluation_population(scored, quarter)
    nan = float("nan")
    capacity, note = _capacity_by_region(users, teams=teams)
    capacity_known = not capacity.empty
    empty = pd.DataFrame()
    if frame.empty:
        return ThresholdResult(
            quarter,
            empty,
            capacity_known,
            sla_hours,
            business_hours,
            max_late_share,
            0.0,
            nan,
            nan,
            nan,
            alpha,
            note,
            reason=f"no evaluable leads in {quarter or 'the data'}",
        )
    if quarter is not None:
        q = Quarter.parse(quarter)
        n_weeks = (q.end_at - q.start_at).total_seconds() / (7 * SECONDS_PER_DAY)
        origin = pd.Timestamp(q.start_at)
    else:
        ts = pd.to_datetime(frame["scored_at"], utc=True)
        n_weeks = max((ts.max() - ts.min()).total_seconds() / (7 * SECONDS_PER_DAY), 1.0)
        origin = ts.min()
    week_hours = BUSINESS_WEEK_HOURS if business_hours else WEEK_HOURS
    arrivals = np.clip(
        hours_between(origin, frame["scored_at"], business_hours=business_hours), 0, None
    ).astype(float)
    y = frame["converted"].astype(bool).to_numpy()
    score = frame["score"].to_numpy(float)
    rule = frame["current_rule"].astype(bool).to_numpy()
    regions = frame["region"].astype(str).to_numpy()
    cap_by_region = dict(zip(capacity["region"], capacity["capacity_leads_per_week"], strict=True))
    rows, gains, strata = [], np.zeros(y.size), np.zeros(y.size, dtype=int)
    gridded: list[str] = []
    for i, region in enumerate(sorted(set(regions))):
        idx = np.flatnonzero(regions == region)
        strata[idx] = i
        cap = cap_by_region.get(region)
        rule_idx = idx[rule[idx]]
        row = {
            "region": region,
            "capacity_leads_per_week": float(cap) if cap is not None else nan,
            "capacity_leads_per_day": float(cap) / BUSINESS_DAYS_PER_WEEK
            if cap is not None
            else nan,
            "threshold": nan,
            "score_leads_per_week": nan,
            "score_late_share": nan,
            "rule_leads_per_week": rule_idx.size / n_weeks,
            "rule_late_share": nan,
            "score_converted": nan,
            "rule_converted": float(y[rule_idx].sum()),
            "sqls_gained": nan,
            "sqls_gained_ci_low": nan,
            "sqls_gained_ci_high": nan,
            "note": "capacity unknown: no threshold",
        }
        if cap is not None:
            service = week_hours / float(cap) if cap > 0 else np.inf
            row["rule_late_share"] = (
                _late_counts(arrivals[rule_idx], np.arange(rule_idx.size), service, sla_hours)[-1]
                / rule_idx.size
                if rule_idx.size
                else 0.0
            )
            order = np.argsort(-score[idx], kind="mergesort")
            k, late_k, exact = _largest_feasible_k(
                score[idx][order], arrivals[idx], order, service, sla_hours, max_late_share
            )
            if not exact:
                gridded.append(region)
            sent = np.zeros(idx.size, dtype=bool)
            sent[order[:k]] = True
            region_gain = y[idx] * (sent.astype(float) - rule[idx].astype(float))
            gains[idx] = region_gain
            low, high = _bootstrap_sum(region_gain, n_boot=n_boot, seed=seed + i, alpha=alpha)
            row.update(
                threshold=float(score[idx][order][k - 1]) if k else nan,
                score_leads_per_week=k / n_weeks,
                score_late_share=late_k / k if k else 0.0,
                score_converted=float(y[idx][sent].sum()),
                sqls_gained=float(region_gain.sum()),
                sqls_gained_ci_low=low,
                sqls_gained_ci_high=high,
                note="; ".join(
                    ([] if k else [f"no lead can be worked within the {sla_hours:g}-hour SLA"])
                    # (only with no capacity: the first lead of an empty queue never waits)
                    + ([] if n_boot > 0 else ["no bootstrap interval (n_boot = 0)"])
                ),
            )
        rows.append(row)
    by_region = pd.DataFrame(rows)
    reason = None
    if not capacity_known:
        reason = note
        note = None
    missing = [r for r in by_region["region"] if r not in cap_by_region] if capacity_known else []
    extras = []
    if missing:
        extras.append(f"capacity unknown for {', '.join(missing)}: no threshold there")
    if gridded:
        extras.append(
            f"thresholds in {', '.join(gridded)} chosen on a grid of {MAX_EXACT_CUTS:,} cuts"
        )
    if extras:
        note = "; ".join([note, *extras] if note else extras)
    known = np.isin(regions, [r for r in cap_by_region])
    if capacity_known and known.any():
        low, high = _bootstrap_sum(
            gains[known], n_boot=n_boot, seed=seed, alpha=alpha, strata=strata[known]
        )
        total = float(gains[known].sum())
    else:
        low = high = total = nan
    return ThresholdResult(
        quarter=quarter,
        by_region=by_region,
        capacity_known=capacity_known,
        sla_hours=sla_hours,
        business_hours=business_hours,
        max_late_share=max_late_share,
        n_weeks=n_weeks,
        sqls_gained=total,
        sqls_gained_ci_low=low,
        sqls_gained_ci_high=high,
        alpha=alpha,
        note=note,
        reason=reason,
    )


def _largest_feasible_k(
    sorted_scores: np.ndarray,
    arrivals: np.ndarray,
    order: np.ndarray,
    service_hours: float,
    sla_hours: float,
    max_late_share: float,
) -> tuple[int, float, bool]:
    """The most leads, best first and cut between distinct scores, with at most
    ``max_late_share`` of them late: ``(k, late leads among them, exact)``.

    Every cut is tried when there are at most ``MAX_EXACT_CUTS``; else an even grid of that
    many (``exact`` is then False).
    """
    n = sorted_scores.size
    if n == 0:
        return 0, 0.0, True
    at_boundary = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # no cut inside a tie
    cuts = np.flatnonzero(at_boundary) + 1  # candidate k
    exact = cuts.size <= MAX_EXACT_CUTS
    if not exact:
        cuts = cuts[np.unique(np.linspace(0, cuts.size - 1, MAX_EXACT_CUTS).round().astype(int))]
    late = _late_counts(arrivals, order, service_hours, sla_hours, ks=cuts)
    feasible = late <= max_late_share * cuts + 1e-9
    if not feasible.any():
        return 0, 0.0, exact
    best = int(np.flatnonzero(feasible).max())
    return int(cuts[best]), float(late[best]), exact


# --------------------------------------------------------------------------------------------
# Closed loop: what happened to the leads of each decile
# --------------------------------------------------------------------------------------------


def count_disqualifications_by_decile(
    scored: pd.DataFrame, *, quarter: str | None = None, top_reasons: int = 6
) -> pd.DataFrame:
    """Disqualification reasons by score decile, among evaluable leads.

    Returns
    -------
    pandas.DataFrame
        One row per decile (1 = best): ``decile, n_leads, n_disqualified,
        disqualified_share``, then one column per reason (the ``top_reasons`` most frequent,
        the rest as ``other reasons``) holding the share of the decile's disqualified leads.
        Disqualifications count within the outcome window after the scoring instant.
    """
    frame = _evaluation_population(scored, quarter)
    base = ["decile", "n_leads", "n_disqualified", "disqualified_share"]
    if frame.empty:
        return pd.DataFrame(columns=base)
    reason = frame["disqualified_reason"].astype("object")
    is_dq = reason.notna()
    counts = reason[is_dq].value_counts()
    ordered = sorted(counts.index, key=lambda r: (-counts[r], str(r)))
    keep = ordered[:top_reasons]
    label = reason.where(reason.isin(keep) | ~is_dq, "other reasons")
    table = (
        frame.assign(is_dq=is_dq, label=label)
        .groupby("decile")
        .agg(n_leads=("person_id", "size"), n_disqualified=("is_dq", "sum"))
    )
    table["disqualified_share"] = table["n_disqualified"] / table["n_leads"]
    if is_dq.any():
        shares = pd.crosstab(frame["decile"][is_dq], label[is_dq], normalize="index")
        shares = shares.reindex(
            columns=[*keep, *(["other reasons"] if len(ordered) > top_reasons else [])]
        )
        table = table.join(shares).fillna(0.0)
    return table.reset_index().astype({"n_leads": "int64", "n_disqualified": "int64"})


def measure_conversion_by_sla(
    scored: pd.DataFrame,
    *,
    sla_hours: float = 24.0,
    business_hours: bool = True,
    quarter: str | None = None,
) -> pd.DataFrame:
    """Conversion of the leads the rule sent, worked within the SLA vs late, per decile.

    Returns
    -------
    pandas.DataFrame
        ``decile, worked, n, n_converted, conversion_rate``; ``worked`` is ``within SLA``
        (first sales touch within ``sla_hours`` of the MQL, business hours Mon-Fri when
        ``business_hours``), ``late`` or ``not worked`` (no sales touch in the outcome window).
    """
    frame = _evaluation_population(scored, quarter)
    frame = frame[frame["current_rule"].astype(bool)]
    columns = ["decile", "worked", "n", "n_converted", "conversion_rate"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    touched = frame["first_sales_touch_at"].notna()
    hours = hours_between(
        frame["mql_at"], frame["first_sales_touch_at"], business_hours=business_hours
    )
    worked = np.where(~touched, "not worked", np.where(hours <= sla_hours, "within SLA", "late"))
    grouped = frame.assign(worked=worked, y=frame["converted"].astype(bool)).groupby(
        ["decile", "worked"]
    )
    table = grouped.agg(n=("y", "size"), n_converted=("y", "sum")).reset_index()
    table["conversion_rate"] = table["n_converted"] / table["n"]
    order = {"within SLA": 0, "late": 1, "not worked": 2}
    table = table.sort_values(
        ["decile", "worked"], key=lambda s: s.map(order) if s.name == "worked" else s
    )
    return (
        table.loc[:, columns].astype({"n": "int64", "n_converted": "int64"}).reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------
# Per-quarter backtest and headline KPIs
# --------------------------------------------------------------------------------------------


def backtest_by_quarter(
    leads: pd.DataFrame,
    *,
    quarters: Sequence[str],
    window_days: int = 90,
    regularisation: float = 1.0,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """For each quarter: the rule's precision and recall, and the AUC of a score fitted on
    the quarters before it. Quarters whose windows have not closed are reported, not scored.

    Returns
    -------
    pandas.DataFrame
        ``quarter, n, n_converted, model_auc, model_auc_ci_low, model_auc_ci_high, rule_auc,
        rule_precision, rule_recall, rule_missed_share, note``.
    """
    leads = _with_quarter(leads)
    rows = []
    for quarter in sorted(quarters):
        split = split_leads_by_quarter(leads, quarter, window_days=window_days)
        row: dict[str, Any] = {"quarter": quarter}
        if split.quarter != quarter:
            row["note"] = f"outcome windows of {quarter} not closed"
            rows.append(row)
            continue
        model = fit_lead_score(split.train, regularisation=regularisation)
        scored = score_leads(model, split.test)
        ev = evaluate_scores(scored, quarter=quarter, n_boot=n_boot, alpha=alpha, seed=seed)
        row.update(n=ev.n, n_converted=ev.n_converted)
        if ev.reason is not None:
            row["note"] = ev.reason
        else:
            row.update(
                rule_auc=ev.rule_auc,
                rule_precision=ev.rule["precision"],
                rule_recall=ev.rule["recall"],
                rule_missed_share=ev.rule["missed_share"],
            )
            if model.is_fitted:
                row.update(
                    model_auc=ev.auc,
                    model_auc_ci_low=ev.auc_ci_low,
                    model_auc_ci_high=ev.auc_ci_high,
                )
            else:
                row["note"] = f"no model: {model.reason}"
        rows.append(row)
    columns = [
        "quarter",
        "n",
        "n_converted",
        "model_auc",
        "model_auc_ci_low",
        "model_auc_ci_high",
        "rule_auc",
        "rule_precision",
        "rule_recall",
        "rule_missed_share",
        "note",
    ]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["note"] = table["note"].fillna("").astype(str)
    return table.astype({"n": "Int64", "n_converted": "Int64"})


def lead_scoring_kpis(backtest: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Headline KPI rows (``kpi, quarter, value, unit, source``) from :func:`backtest_by_quarter`:
    model AUC, current rule recall and precision, per quarter with a value."""
    specs = (
        ("Lead score AUC", "model_auc", "ratio", True),
        ("MQL rule recall (share of SQLs it sent)", "rule_recall", "fraction", True),
        ("MQL rule precision (MQLs reaching SQL)", "rule_precision", "fraction", True),
    )
    rows = [
        {
            "kpi": kpi,
            "quarter": row["quarter"],
            "value": float(row[column]),
            "unit": unit,
            "source": source,
            "higher_is_better": better,
        }
        for kpi, column, unit, better in specs
        for _i, row in backtest.iterrows()
        if pd.notna(row.get(column))
    ]
    return pd.DataFrame(
        rows, columns=["kpi", "quarter", "value", "unit", "source", "higher_is_better"]
    )


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def _more_or_fewer(count: float, noun: str) -> str:
    """``(3, "SQL")`` → ``"3 more SQLs"``; ``(-1, "SQL")`` → ``"1 fewer SQL"``; 0: "as many"."""
    rounded = round(abs(count))
    if rounded == 0:
        return f"as many {noun}s"
    return f"{rounded:,} {'more' if count > 0 else 'fewer'} {noun}{'s' if rounded != 1 else ''}"


def lead_quality_verdict(
    model: ScoreModelResult,
    evaluation: ScoreEvaluation,
    comparison: RuleComparison,
    threshold: ThresholdResult,
    *,
    outcome_stage: str = "SQL",
    window_days: int = 90,
    note: str | None = None,
) -> str:
    """The lead-quality findings in plain sentences, for leadership.

    Every number is one that a table of the notebook shows (metrics, comparison, capacity).
    """
    if evaluation.reason is not None:
        text = f"The lead score could not be evaluated: {evaluation.reason}."
        if not model.is_fitted:
            text += f" No score was fitted: {model.reason}."
        return text
    level = int(round(100 * (1 - evaluation.alpha)))
    rule = evaluation.rule
    sentences = [
        f"{evaluation.n:,} leads scored in {evaluation.quarter} were judged; "
        f"{evaluation.n_converted:,} of them reached {outcome_stage} within {window_days} days."
    ]
    if note:
        sentences.append(note[0].upper() + note[1:] + ".")
    sentences.append(
        f"The current MQL rule sent {_percent(rule['flagged_share'])} of them to sales; "
        f"{_percent(rule['precision'])} of those reached {outcome_stage}, and it missed "
        f"{_percent(rule['missed_share'])} of the leads that did."
    )
    if not model.is_fitted:
        sentences.append(f"No lead score was fitted: {model.reason}.")
        return " ".join(sentences)
    ci = f"{level} % CI {evaluation.auc_ci_low:.2f}–{evaluation.auc_ci_high:.2f}"
    diff_low, diff_high = evaluation.auc_diff_ci_low, evaluation.auc_diff_ci_high
    if diff_low > 0:
        verb = "ranks leads better than"
    elif diff_high < 0:
        verb = "ranks leads worse than"
    else:
        verb = "ranks leads about as well as"
    sentences.append(
        f"The lead score {verb} the rule: AUC {evaluation.auc:.2f} ({ci}) against "
        f"{evaluation.rule_auc:.2f} for the rule (0.5 is a coin toss, 1 a perfect ranking)."
    )
    if comparison.reason is None:
        sentences.append(
            f"Sending as many leads as the rule, but the best-scored ones, would have found "
            f"{_more_or_fewer(comparison.sqls_gained, outcome_stage)} ({level} % CI "
            f"{comparison.sqls_gained_ci_low:+,.0f} to {comparison.sqls_gained_ci_high:+,.0f}); "
            "leads the rule did not send were never worked, so this is a lower bound."
        )
    if threshold.capacity_known and not threshold.by_region.empty:
        known = threshold.by_region.dropna(subset=["capacity_leads_per_week"])
        rule_flow = known["rule_leads_per_week"]
        rule_late = (known["rule_late_share"].fillna(0) * rule_flow).sum() / max(
            rule_flow.sum(), 1e-12
        )
        sentences.append(
            f"At today's SDR capacity the rule's {rule_flow.sum():,.1f} leads a week would leave "
            f"{_percent(rule_late)} of them waiting beyond the {threshold.sla_hours:g}-hour SLA. "
            f"The capacity-aware score thresholds send {known['score_leads_per_week'].sum():,.1f} "
            f"leads a week, of which at most {_percent(threshold.max_late_share)} wait beyond it, "
            f"and would have found {_more_or_fewer(threshold.sqls_gained, outcome_stage)} than "
            f"the rule ({level} % CI {threshold.sqls_gained_ci_low:+,.0f} to "
            f"{threshold.sqls_gained_ci_high:+,.0f})."
        )
    elif threshold.reason:
        sentences.append(threshold.reason[0].upper() + threshold.reason[1:] + ".")
    table = model.summary()
    if "current_rule" in set(table["feature"]):
        rule_row = table[table["feature"] == "current_rule"].iloc[0]
        sentences.append(
            f"Leads the rule sent had {rule_row['odds_ratio']:.1f}x the odds of reaching "
            f"{outcome_stage} of those it did not (this includes the effect of being worked)."
        )
    signals = table[(table["p_value"] < 1 - level / 100) & (table["feature"] != "current_rule")]
    if not signals.empty:
        top = signals.loc[(signals["coef"].abs() / signals["se"]).idxmax()]
        what = f"{top['feature']} {top['per']}" if top["level"] else top["per"]
        lead_in = "Beyond the rule, the" if "current_rule" in set(table["feature"]) else "The"
        sentences.append(
            f"{lead_in} clearest signal in the score is {what} "
            f"({top['odds_ratio']:.2f}x the odds)."
        )
    return " ".join(sentences)
