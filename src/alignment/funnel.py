"""Funnel and hand-off: cohort conversion, velocity, SLA compliance, unworked leads, capacity,
dispositions and the funnel's headline KPIs.

Row-level work (each person's stage timeline, first sales touch, source touch, cohort flags,
opportunity sourcing) is written as Ibis expressions (``build_*`` functions take and return
``ibis.Table`` and execute nothing), so it runs in DuckDB by default and on Spark unchanged.
The ``measure_*``/``find_*``/``summarise_*``/``compute_*`` functions execute one small
per-lead expression each and do the statistics and the business-hour arithmetic in pandas and
numpy; they return frozen results objects whose ``summary()`` is the tidy frame a report shows.

Definitions (all timestamps UTC; a day is 24 h; hours are business hours where stated)
---------------------------------------------------------------------------------------
Funnel stages, in order: Lead, MQL, SAL, SQL, Opportunity, Customer. Disqualified and Recycled
are dispositions, not stages.

**Stage events are messy** (out of order, repeated, tied), so:

- *First entry per person and stage*: a person entered a stage at the earliest ``entered_at``
  of that stage's events. An exact duplicate therefore counts once, and a repeated entry
  (e.g. a second MQL after a recycle) does not start a new cohort. Ties on the same instant
  are broken by ``owner_user_id`` (non-null first, then alphabetically) and then ``reason``,
  so the owner and reason kept are deterministic.
- *Reaching a stage* means entering it or any later funnel stage: ``sal_reached_at`` is the
  first entry into SAL, SQL, Opportunity or Customer. A lead moved straight from MQL to SQL
  has therefore reached SAL (at its SQL time), so the funnel never widens downstream.
- *Out of order*: a later stage whose timestamp precedes an earlier stage's is kept with its
  own timestamp and counts as reached (its time from MQL is negative, which is within any
  window). Velocity clips such negative durations to 0 and counts them (``n_out_of_order``).

**Cohort conversion.** The cohort of a quarter is the people whose first MQL falls in
``[quarter start, quarter end)``. A cohort member converted to SAL if it reached SAL at most
``sal_window_days`` after its MQL (the window's end instant is included); likewise SQL within
``sql_window_days`` and Customer (won) within ``won_window_days``. Rates are fractions of the
cohort, never ratios of two period counts. ``as_of`` (default: the data's last stage event)
cuts the data: events after it are unknown. A member whose window is still open at ``as_of``
and who has not converted is *open* (right-censored), not a failure; a cohort with open
members is flagged ``is_censored`` and its rate is a lower bound.

**Acceptance rate (MQL→SAL).** Of the cohort's MQLs that sales dispositioned by ``as_of``,
the share accepted: accepted = reached SAL (no window); rejected = not accepted and
Disqualified or Recycled at or after the MQL. MQLs with neither are pending.

**Hand-off SLA.** A lead's first sales touch is its first touchpoint with ``is_sales_touch``
at or after its MQL instant (a sales touch before the MQL is not a response to it), up to
``as_of``. Hours to first touch are business hours by default (:func:`business_hours_between`:
Monday to Friday, 24 h a day, UTC, configurable working hours and holidays), else elapsed
hours. The target is ``sla_hours_by_segment[segment]``, else ``sla_hours``. A lead is *met*
when touched within the target (the target instant included), *breached* when touched later
or when the target has passed at ``as_of`` without a touch, and *open* otherwise. Compliance
is met / (met + breached).

**Unworked leads.** An MQL was *never worked* when it has no sales touch at all up to
``as_of`` (a sales touch before the MQL counts as worked, e.g. a rep already talking to the
person); it is *unworked in the window* when no sales touch falls within
``[MQL, MQL + within_days]``.

**Source channel and campaign** of a lead: its first touchpoint's ``channel`` and
``campaign_id`` (by ``ts`` then ``touch_id``; marketing or sales touch alike); ``(none)``
when the person has no touch.

**Rep** of a lead: the sales-side user responsible for it, the first known of: the owner of
its first SAL event, of its first Disqualified event, the user of its first sales touch at
or after the MQL, the owner of its first MQL event; ``(unassigned)`` when none is known.
When ``users`` is given, only users of team ``sdr`` or ``sales`` qualify (CRMs often stamp
the MQL with a marketing owner); without it every owner qualifies.
**Segment** and **region**: those of the person's account.

**Capacity.** Inflow is MQLs per week (MQLs of the quarter / the quarter's length in weeks).
A rep's inflow is its leads' count; leads whose rep is not an SDR user (``team == "sdr"``)
are split equally among the SDR users of their region. A region's inflow is all MQLs of its
accounts; its capacity is the sum of its SDR users' ``capacity_leads_per_week``. Over
capacity: inflow per week strictly greater than capacity.

**Opportunity sourcing.** An opportunity is marketing-sourced when its account's first touch
strictly before the opportunity's ``created_at`` was a marketing touch, sales-sourced when it
was a sales touch, and ``unattributed`` when the account had no touch before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from ibis import _

from alignment.params import FunnelParams, Quarter
from alignment.store import strip_text

log = logging.getLogger(__name__)

FUNNEL_STAGES: tuple[str, ...] = ("Lead", "MQL", "SAL", "SQL", "Opportunity", "Customer")
"""Funnel stages in order."""
DISPOSITIONS: tuple[str, ...] = ("Disqualified", "Recycled")
"""Stage values that end or pause a lead instead of advancing it."""
STAGES: tuple[str, ...] = FUNNEL_STAGES + DISPOSITIONS
STAGE_COLUMNS: dict[str, str] = {stage: f"{stage.lower()}_at" for stage in STAGES}
"""Timeline column holding each stage's first entry, e.g. ``"MQL" -> "mql_at"``."""
REACHED_COLUMNS: dict[str, str] = {
    stage: f"{stage.lower()}_reached_at" for stage in FUNNEL_STAGES[2:]
}
"""Timeline column holding the first entry into a stage or any later one."""

NONE_LABEL = "(none)"
UNKNOWN_LABEL = "(unknown)"
UNASSIGNED_LABEL = "(unassigned)"
SLA_DIMENSIONS: tuple[str, ...] = ("segment", "region", "rep", "channel")
SLA_STATUSES: tuple[str, ...] = ("met", "breached", "open")


# --------------------------------------------------------------------------------------------
# Business hours (numpy, vectorised)
# --------------------------------------------------------------------------------------------


def _utc_datetime64(values: Any) -> np.ndarray:
    """Timestamps (scalar or array-like; naive taken as UTC) as naive-UTC ``datetime64[us]``."""
    if isinstance(values, (str, datetime, np.datetime64)) or np.isscalar(values):
        values = [values]
    series = pd.to_datetime(pd.Series(values), utc=True)
    return series.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")


def business_hours_between(
    start: Any,
    end: Any,
    *,
    workday_hours: tuple[float, float] = (0.0, 24.0),
    weekmask: str = "1111100",
    holidays: Sequence[Any] = (),
) -> np.ndarray:
    """Business hours from ``start`` to ``end``, element-wise.

    Parameters
    ----------
    start, end : timestamp or array-like of timestamps
        UTC (tz-aware, or naive taken as UTC); broadcast against each other. ``NaT`` gives
        ``NaN``.
    workday_hours : (float, float), default (0, 24)
        Working hours of a business day, UTC clock hours ``[from, to)``; the default counts
        whole weekdays (24 h a day).
    weekmask : str, default "1111100"
        Business days Monday..Sunday, as for ``numpy.busday_count`` (default Monday–Friday).
    holidays : sequence of dates, default ()
        Days that are not business days.

    Returns
    -------
    numpy.ndarray of float
        Hours of working time in ``[start, end)``; negative when ``end`` precedes ``start``
        (the same magnitude as the reverse interval).

    Notes
    -----
    With ``f(t)`` the working seconds of ``t``'s day before ``t``
    (``clip(time of day, from, to) - from``) and ``W`` a business day's working seconds,
    the result is ``W * busday_count(day(start), day(end)) - f(start) * is_busday(day(start))
    + f(end) * is_busday(day(end))``: whole business days by ``numpy.busday_count``, then the
    partial first and last days. Checked against a minute-by-minute count
    (``tests/test_funnel.py``).

    Examples
    --------
    A breach across a weekend: MQL Friday 20:00, first touch Monday 10:00 is 4 h + 10 h.

    >>> business_hours_between(pd.Timestamp("2026-07-03 20:00", tz="UTC"),
    ...                        pd.Timestamp("2026-07-06 10:00", tz="UTC"))
    array([14.])
    >>> business_hours_between("2026-07-03 16:00", "2026-07-06 10:00", workday_hours=(9, 17))
    array([2.])
    """
    start_h, end_h = float(workday_hours[0]), float(workday_hours[1])
    if not 0.0 <= start_h < end_h <= 24.0:
        raise ValueError(f"workday_hours must satisfy 0 <= from < to <= 24; got {workday_hours}")
    starts, ends = np.broadcast_arrays(_utc_datetime64(start), _utc_datetime64(end))
    missing = np.isnat(starts) | np.isnat(ends)
    filler = np.datetime64("2000-01-03T00:00:00", "us")
    starts = np.where(missing, filler, starts)
    ends = np.where(missing, filler, ends)
    holiday_days = np.array(
        [np.datetime64(pd.Timestamp(d).date(), "D") for d in holidays], dtype="datetime64[D]"
    )
    calendar = np.busdaycalendar(weekmask=weekmask, holidays=holiday_days)
    start_days, end_days = starts.astype("datetime64[D]"), ends.astype("datetime64[D]")
    day_s = (end_h - start_h) * 3600.0

    def worked_before(moment: np.ndarray, day: np.ndarray) -> np.ndarray:
        seconds = (moment - day.astype("datetime64[us]")) / np.timedelta64(1, "s")
        return np.clip(seconds, start_h * 3600.0, end_h * 3600.0) - start_h * 3600.0

    total_s = (
        day_s * np.busday_count(start_days, end_days, busdaycal=calendar)
        - worked_before(starts, start_days) * np.is_busday(start_days, busdaycal=calendar)
        + worked_before(ends, end_days) * np.is_busday(end_days, busdaycal=calendar)
    )
    hours = total_s / 3600.0
    return np.where(missing, np.nan, hours)


def elapsed_hours_between(start: Any, end: Any) -> np.ndarray:
    """Elapsed hours from ``start`` to ``end`` (UTC), element-wise; ``NaN`` where either is NaT."""
    starts, ends = np.broadcast_arrays(_utc_datetime64(start), _utc_datetime64(end))
    hours = (ends - starts) / np.timedelta64(1, "h")
    return np.where(np.isnat(starts) | np.isnat(ends), np.nan, hours)


def hours_between(
    start: Any,
    end: Any,
    *,
    business_hours: bool = True,
    workday_hours: tuple[float, float] = (0.0, 24.0),
    holidays: Sequence[Any] = (),
) -> np.ndarray:
    """Business hours (:func:`business_hours_between`) or elapsed hours (``business_hours``)."""
    if business_hours:
        return business_hours_between(start, end, workday_hours=workday_hours, holidays=holidays)
    return elapsed_hours_between(start, end)


# --------------------------------------------------------------------------------------------
# Ibis: row-level expressions (execute nothing)
# --------------------------------------------------------------------------------------------


def _optional(table: ir.Table, name: str, dtype: str = "string") -> ir.Value:
    """``table[name]`` cast to ``dtype``, or a typed null when the optional column is absent."""
    return table[name].cast(dtype) if name in table.columns else ibis.null(dtype)


def _left_join(left: ir.Table, right: ir.Table, key: str) -> ir.Table:
    """Left join on one equally named key, keeping a single key column."""
    joined = left.left_join(right, key)
    extra = f"{key}_right"
    return joined.drop(extra) if extra in joined.columns else joined


def _quarter_label(ts: ir.TimestampValue) -> ir.StringValue:
    """``YYYYQn`` of a UTC timestamp, as an Ibis expression."""
    return ts.year().cast("string") + "Q" + ts.quarter().cast("string")


def first_stage_events(stage_events: ir.Table) -> ir.Table:
    """The first event of each person and stage: ``person_id, stage, entered_at,
    owner_user_id, reason``.

    Rows with a null ``person_id`` or ``entered_at``, or a stage outside :data:`STAGES`, are
    dropped. Ties on ``entered_at`` are broken by ``owner_user_id`` (non-null first) and then
    ``reason``, so exact duplicates collapse to one row and the kept owner is deterministic.
    Optional columns ``owner_user_id`` and ``reason`` are null where absent.
    """
    events = stage_events.select(
        person_id=_.person_id.cast("string"),
        stage=strip_text(_.stage.cast("string")),
        entered_at=_.entered_at,
        owner_user_id=_optional(stage_events, "owner_user_id"),
        reason=_optional(stage_events, "reason"),
    ).filter(_.person_id.notnull(), _.entered_at.notnull(), _.stage.isin(STAGES))
    by_person_stage = ibis.window(
        group_by=[_.person_id, _.stage],
        order_by=[
            _.entered_at,
            _.owner_user_id.asc(nulls_first=False),  # a named owner wins a tie
            _.reason.asc(nulls_first=False),
        ],
    )
    return (
        events.mutate(rank=ibis.row_number().over(by_person_stage))  # 0-based
        .filter(_.rank == 0)
        .drop("rank")
    )


def build_stage_timeline(stage_events: ir.Table) -> ir.Table:
    """One row per person: the first entry into each stage and the first time each stage was
    reached (see the module docstring).

    Parameters
    ----------
    stage_events : ibis.Table
        Contract table ``stage_events`` (``owner_user_id`` and ``reason`` optional).

    Returns
    -------
    ibis.Table
        ``person_id``; ``lead_at, mql_at, sal_at, sql_at, opportunity_at, customer_at,
        disqualified_at, recycled_at`` (first entry per stage, UTC, null if never);
        ``sal_reached_at, sql_reached_at, opportunity_reached_at, customer_reached_at``
        (first entry into the stage or a later funnel stage); ``mql_owner_user_id,
        sal_owner_user_id, disqualified_owner_user_id`` (owner of that first event);
        ``disqualified_reason, recycled_reason`` (reason of that first event).
    """
    firsts = first_stage_events(stage_events)
    columns: dict[str, ir.Value] = {
        column: _.entered_at.min(where=_.stage == stage) for stage, column in STAGE_COLUMNS.items()
    }
    for position, stage in enumerate(FUNNEL_STAGES):
        if stage in REACHED_COLUMNS:
            later = FUNNEL_STAGES[position:]
            columns[REACHED_COLUMNS[stage]] = _.entered_at.min(where=_.stage.isin(later))
    columns["mql_owner_user_id"] = _.owner_user_id.max(where=_.stage == "MQL")
    columns["sal_owner_user_id"] = _.owner_user_id.max(where=_.stage == "SAL")
    columns["disqualified_owner_user_id"] = _.owner_user_id.max(where=_.stage == "Disqualified")
    columns["disqualified_reason"] = _.reason.max(where=_.stage == "Disqualified")
    columns["recycled_reason"] = _.reason.max(where=_.stage == "Recycled")
    return firsts.group_by("person_id").aggregate(**columns)


def normalise_touches(touchpoints: ir.Table) -> ir.Table:
    """Touchpoints with the columns the funnel uses, typed, optional ones filled.

    Returns ``touch_id, person_id, account_id, ts, channel, campaign_id, is_sales_touch,
    user_id``; ``is_sales_touch`` is false where absent or null (the contract: marketing's
    unless marked); ``account_id``, ``campaign_id`` and ``user_id`` null where absent.
    """
    if "is_sales_touch" in touchpoints.columns:
        is_sales = touchpoints.is_sales_touch.cast("boolean").fill_null(False)
    else:
        is_sales = ibis.literal(False)
    return touchpoints.select(
        touch_id=_.touch_id.cast("string"),
        person_id=_.person_id.cast("string"),
        account_id=_optional(touchpoints, "account_id"),
        ts=_.ts,
        channel=_.channel.cast("string"),
        campaign_id=_optional(touchpoints, "campaign_id"),
        is_sales_touch=is_sales,
        user_id=_optional(touchpoints, "user_id"),
    ).filter(_.person_id.notnull(), _.ts.notnull())


def build_source_touches(touchpoints: ir.Table) -> ir.Table:
    """Each person's first touch: ``person_id, source_channel, source_campaign_id,
    source_touch_at`` (by ``ts`` then ``touch_id``; nulls shown as ``(none)``)."""
    touches = normalise_touches(touchpoints)
    by_person = ibis.window(group_by=_.person_id, order_by=[_.ts, _.touch_id])  # id breaks ties
    return (
        touches.mutate(rank=ibis.row_number().over(by_person))
        .filter(_.rank == 0)
        .select(
            "person_id",
            source_channel=_.channel.fill_null(NONE_LABEL),
            source_campaign_id=_.campaign_id.fill_null(NONE_LABEL),
            source_touch_at=_.ts,
        )
    )


def build_first_sales_touches(touchpoints: ir.Table, timeline: ir.Table) -> ir.Table:
    """Each MQL's first sales touch at or after its MQL instant.

    Returns ``person_id, first_sales_touch_at, first_sales_touch_user_id``; people with no
    such touch have no row. Ties on ``ts`` are broken by ``touch_id``.
    """
    mqls = timeline.filter(_.mql_at.notnull()).select("person_id", "mql_at")
    sales = (
        normalise_touches(touchpoints)
        .filter(_.is_sales_touch)
        .join(mqls, "person_id")
        .filter(_.ts >= _.mql_at)  # a touch at the MQL instant is a response
    )
    by_person = ibis.window(group_by=_.person_id, order_by=[_.ts, _.touch_id])
    return (
        sales.mutate(rank=ibis.row_number().over(by_person))
        .filter(_.rank == 0)
        .select("person_id", first_sales_touch_at=_.ts, first_sales_touch_user_id=_.user_id)
    )


def build_lead_attributes(people: ir.Table, accounts: ir.Table) -> ir.Table:
    """``person_id, account_id, segment, region`` from the person's account (``(unknown)``
    where the account or its value is missing)."""
    persons = people.select(
        person_id=_.person_id.cast("string"), account_id=_.account_id.cast("string")
    )
    accts = accounts.select(
        account_id=_.account_id.cast("string"),
        segment=_.segment.cast("string"),
        region=_.region.cast("string"),
    )
    return _left_join(persons, accts, "account_id").mutate(
        segment=_.segment.fill_null(UNKNOWN_LABEL), region=_.region.fill_null(UNKNOWN_LABEL)
    )


def build_lead_facts(
    stage_events: ir.Table,
    touchpoints: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    users: ir.Table | None = None,
) -> ir.Table:
    """One row per MQL (first MQL in ``[start_at, end_at)``, either bound optional).

    ``users`` (optional) restricts the rep to users of team ``sdr`` or ``sales``.

    Returns
    -------
    ibis.Table
        ``person_id, quarter`` (of the MQL, ``YYYYQn``), ``mql_at, sal_reached_at,
        sql_reached_at, customer_reached_at, disqualified_at, recycled_at,
        first_sales_touch_at, first_sales_touch_user_id`` (first sales touch at or after the
        MQL), ``first_sales_touch_ever_at`` (first sales touch at any time), ``rep`` (see the
        module docstring),
        ``channel, campaign_id`` (source), ``account_id, segment, region``.
    """
    timeline = build_stage_timeline(stage_events)
    mqls = timeline.filter(_.mql_at.notnull())
    if start_at is not None:
        mqls = mqls.filter(_.mql_at >= ibis.timestamp(start_at))
    if end_at is not None:
        mqls = mqls.filter(_.mql_at < ibis.timestamp(end_at))
    facts = _left_join(mqls, build_first_sales_touches(touchpoints, timeline), "person_id")
    ever = (
        normalise_touches(touchpoints)
        .filter(_.is_sales_touch)
        .group_by("person_id")
        .aggregate(first_sales_touch_ever_at=_.ts.min())
    )
    facts = _left_join(facts, ever, "person_id")
    facts = _left_join(facts, build_source_touches(touchpoints), "person_id")
    facts = _left_join(facts, build_lead_attributes(people, accounts), "person_id")
    return facts.select(
        "person_id",
        quarter=_quarter_label(_.mql_at),
        mql_at=_.mql_at,
        sal_reached_at=_.sal_reached_at,
        sql_reached_at=_.sql_reached_at,
        customer_reached_at=_.customer_reached_at,
        disqualified_at=_.disqualified_at,
        recycled_at=_.recycled_at,
        first_sales_touch_at=_.first_sales_touch_at,
        first_sales_touch_user_id=_.first_sales_touch_user_id,
        first_sales_touch_ever_at=_.first_sales_touch_ever_at,
        rep=ibis.coalesce(*_rep_candidates(users)).fill_null(UNASSIGNED_LABEL),
        channel=_.source_channel.fill_null(NONE_LABEL),
        campaign_id=_.source_campaign_id.fill_null(NONE_LABEL),
        account_id=_.account_id,
        segment=_.segment.fill_null(UNKNOWN_LABEL),
        region=_.region.fill_null(UNKNOWN_LABEL),
    )


def _rep_candidates(users: ir.Table | None) -> list[ir.Value]:
    """Rep candidates in order (module docstring); with ``users``, non-sales users are null."""
    candidates = [
        _.sal_owner_user_id,
        _.disqualified_owner_user_id,
        _.first_sales_touch_user_id,
        _.mql_owner_user_id,
    ]
    if users is None:
        return candidates
    sales_side = users.filter(
        strip_text(_.team.cast("string")).lower().isin(["sdr", "sales"])
    ).user_id.cast("string")
    return [ibis.cases((c.isin(sales_side), c), else_=ibis.null("string")) for c in candidates]


def _reached_within(reached: ir.Value, days: int, as_of: ir.Value) -> ir.BooleanValue:
    """Reached at most ``days`` after the MQL (end instant included) and known by ``as_of``."""
    deadline = _.mql_at + ibis.interval(days=days)
    return (reached.notnull() & (reached <= deadline) & (reached <= as_of)).fill_null(False)


def _window_open(
    reached_in_window: ir.BooleanValue, days: int, as_of: ir.Value
) -> ir.BooleanValue:
    """Not converted yet and the window ends after ``as_of``: right-censored."""
    return ~reached_in_window & (_.mql_at + ibis.interval(days=days) > as_of)


def build_cohort_flags(
    timeline: ir.Table,
    *,
    params: FunnelParams,
    as_of: datetime,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> ir.Table:
    """One row per MQL with first MQL in ``[start_at, end_at)`` and at or before ``as_of``:
    its cohort quarter and whether it converted within each window.

    Parameters
    ----------
    timeline : ibis.Table
        From :func:`build_stage_timeline`.
    params : FunnelParams
        ``sal_window_days``, ``sql_window_days``, ``won_window_days`` (days of 24 h).
    as_of : datetime
        The data's cut-off (UTC): events after it are unknown.
    start_at, end_at : datetime, optional
        MQL window, start included, end excluded.

    Returns
    -------
    ibis.Table
        ``person_id, quarter, mql_at``; for each of ``sal``, ``sql``, ``won``:
        ``is_<x>_in_window`` (reached within the window) and ``is_<x>_open`` (not reached and
        the window still open at ``as_of``); ``is_accepted, is_rejected`` (acceptance).
    """
    cut = ibis.timestamp(as_of)
    cohort = timeline.filter(_.mql_at.notnull(), _.mql_at <= cut)
    if start_at is not None:
        cohort = cohort.filter(_.mql_at >= ibis.timestamp(start_at))
    if end_at is not None:
        cohort = cohort.filter(_.mql_at < ibis.timestamp(end_at))
    windows = {
        "sal": (_.sal_reached_at, params.sal_window_days),
        "sql": (_.sql_reached_at, params.sql_window_days),
        "won": (_.customer_reached_at, params.won_window_days),
    }
    flags = cohort.mutate(
        **{
            f"is_{name}_in_window": _reached_within(reached, days, cut)
            for name, (reached, days) in windows.items()
        }
    )
    flags = flags.mutate(
        **{
            f"is_{name}_open": _window_open(flags[f"is_{name}_in_window"], days, cut)
            for name, (_reached, days) in windows.items()
        }
    )
    accepted = (_.sal_reached_at.notnull() & (_.sal_reached_at <= cut)).fill_null(False)

    def after_mql(column: ir.Value) -> ir.BooleanValue:
        return (column.notnull() & (column >= _.mql_at) & (column <= cut)).fill_null(False)

    flags = flags.mutate(is_accepted=accepted).mutate(
        is_rejected=~_.is_accepted & (after_mql(_.disqualified_at) | after_mql(_.recycled_at))
    )
    return flags.select(
        "person_id",
        quarter=_quarter_label(_.mql_at),
        mql_at=_.mql_at,
        **{
            f"is_{name}_{kind}": flags[f"is_{name}_{kind}"]
            for name in windows
            for kind in ("in_window", "open")
        },
        is_accepted=_.is_accepted,
        is_rejected=_.is_rejected,
    )


def aggregate_cohorts(flags: ir.Table) -> ir.Table:
    """Cohort counts per quarter from :func:`build_cohort_flags`.

    Returns ``quarter, n_mql, n_sal, n_sal_open, n_sql, n_sql_open, n_won, n_won_open,
    n_accepted, n_rejected`` (counts of people, int64).
    """

    def count(flag: ir.BooleanValue) -> ir.IntegerScalar:
        return flag.cast("int64").sum().fill_null(0)

    return flags.group_by("quarter").aggregate(
        n_mql=_.count(),
        n_sal=count(_.is_sal_in_window),
        n_sal_open=count(_.is_sal_open),
        n_sql=count(_.is_sql_in_window),
        n_sql_open=count(_.is_sql_open),
        n_won=count(_.is_won_in_window),
        n_won_open=count(_.is_won_open),
        n_accepted=count(_.is_accepted),
        n_rejected=count(_.is_rejected),
    )


def build_recycled_outcomes(stage_events: ir.Table) -> ir.Table:
    """Each recycled person's first recycle and first SQL-or-later entry after it.

    Returns ``person_id, recycled_at, recycled_reason, converted_at`` (first SQL,
    Opportunity or Customer event strictly after ``recycled_at``, any repeat counted; null
    if none).
    """
    firsts = first_stage_events(stage_events)
    recycled = firsts.filter(_.stage == "Recycled").select(
        "person_id", recycled_at=_.entered_at, recycled_reason=_.reason
    )
    converting = stage_events.select(
        person_id=_.person_id.cast("string"),
        stage=strip_text(_.stage.cast("string")),
        converted_at=_.entered_at,
    ).filter(_.stage.isin(FUNNEL_STAGES[3:]))
    later = (
        recycled.join(converting, "person_id")
        .filter(_.converted_at > _.recycled_at)
        .group_by("person_id")
        .aggregate(converted_at=_.converted_at.min())
    )
    return _left_join(recycled, later, "person_id")


def build_opportunity_sources(
    opportunities: ir.Table, touchpoints: ir.Table, people: ir.Table
) -> ir.Table:
    """Each opportunity with its source: its account's first touch strictly before creation.

    Returns
    -------
    ibis.Table
        ``opp_id, account_id, created_at, closed_at, is_won, amount, source`` where ``source``
        is ``marketing`` (first touch not a sales touch), ``sales`` or ``unattributed`` (no
        touch before creation). A touch's account is its ``account_id`` where present, else
        its person's.
    """
    touches = normalise_touches(touchpoints)
    accounts_of_people = people.select(
        person_id=_.person_id.cast("string"), person_account_id=_.account_id.cast("string")
    )
    touches = (
        _left_join(touches, accounts_of_people, "person_id")
        .mutate(account_id=_.account_id.fill_null(_.person_account_id))
        .select("account_id", "touch_id", "ts", "is_sales_touch")
    )
    opps = opportunities.select(
        opp_id=_.opp_id.cast("string"),
        account_id=_.account_id.cast("string"),
        created_at=_.created_at,
        closed_at=_.closed_at
        if "closed_at" in opportunities.columns
        else ibis.null("timestamp('UTC')"),
        is_won=_.is_won.cast("boolean"),
        amount=_.amount.cast("float64"),
    )
    before = (
        opps.select("opp_id", "account_id", "created_at")
        .join(touches, "account_id")
        .filter(_.ts < _.created_at)
    )
    by_opp = ibis.window(group_by=_.opp_id, order_by=[_.ts, _.touch_id])
    first = (
        before.mutate(rank=ibis.row_number().over(by_opp))
        .filter(_.rank == 0)
        .select("opp_id", first_is_sales=_.is_sales_touch)
    )
    return (
        _left_join(opps, first, "opp_id")
        .mutate(
            source=ibis.cases(
                (_.first_is_sales.isnull(), "unattributed"),
                (_.first_is_sales, "sales"),
                else_="marketing",
            )
        )
        .drop("first_is_sales")
    )


# --------------------------------------------------------------------------------------------
# Execution helpers
# --------------------------------------------------------------------------------------------


def _execute(expr: ir.Expr, con: ibis.BaseBackend | None) -> pd.DataFrame:
    """Run ``expr`` on ``con``, else on the backend its tables are bound to (memtables: the
    default DuckDB)."""
    return con.execute(expr) if con is not None else expr.execute()


def _utc(moment: datetime | pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def find_data_end(
    stage_events: ir.Table,
    touchpoints: ir.Table | None = None,
    *,
    con: ibis.BaseBackend | None = None,
) -> pd.Timestamp:
    """The data's last event (UTC): the latest ``entered_at`` of ``stage_events`` and, when
    given, ``ts`` of ``touchpoints``. The default ``as_of`` of every measure here."""
    latest = [_execute(stage_events.entered_at.max(), con)]
    if touchpoints is not None:
        latest.append(_execute(touchpoints.ts.max(), con))
    known = [pd.Timestamp(x) for x in latest if x is not None and not pd.isna(x)]
    if not known:
        raise ValueError("stage_events is empty: no data end to measure against")
    return _utc(max(known))


def _as_of(
    as_of: datetime | None,
    stage_events: ir.Table,
    touchpoints: ir.Table | None,
    con: ibis.BaseBackend | None,
) -> pd.Timestamp:
    return _utc(as_of) if as_of is not None else find_data_end(stage_events, touchpoints, con=con)


def _quarters(quarters: Quarter | Iterable[Quarter]) -> tuple[Quarter, ...]:
    out = (quarters,) if isinstance(quarters, Quarter) else tuple(quarters)
    if not out:
        raise ValueError("quarters must name at least one quarter")
    return tuple(sorted(set(out)))


def _quarter_column(stamps: pd.Series) -> pd.Series:
    """``YYYYQn`` of UTC timestamps (pandas)."""
    stamps = pd.to_datetime(stamps, utc=True)
    labels = (
        stamps.dt.year.astype("Int64").astype(str)
        + "Q"
        + stamps.dt.quarter.astype("Int64").astype(str)
    )
    return labels.where(stamps.notna())


def _share(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else float("nan")


def _p90(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.quantile(0.9)) if len(values) else float("nan")


def _median(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.median()) if len(values) else float("nan")


# --------------------------------------------------------------------------------------------
# Cohort conversion and velocity
# --------------------------------------------------------------------------------------------

COHORT_STEPS: tuple[tuple[str, str, str], ...] = (
    ("SAL", "sal", "sal_window_days"),
    ("SQL", "sql", "sql_window_days"),
    ("Customer", "won", "won_window_days"),
)


@dataclass(frozen=True, slots=True)
class CohortResult:
    """Fixed-window conversion of quarterly MQL cohorts (see the module docstring).

    Attributes
    ----------
    counts : pandas.DataFrame
        :func:`aggregate_cohorts` per quarter (every requested quarter; zeros when empty).
    quarters : tuple of str
        Cohort quarters, oldest first.
    sal_window_days, sql_window_days, won_window_days : int
        Windows after the MQL instant, days of 24 h, end included.
    as_of : pandas.Timestamp
        Data cut-off (UTC): events after it are unknown.
    """

    counts: pd.DataFrame
    quarters: tuple[str, ...]
    sal_window_days: int
    sql_window_days: int
    won_window_days: int
    as_of: pd.Timestamp

    def summary(self) -> pd.DataFrame:
        """Tidy frame, one row per quarter and step.

        Columns: ``quarter, step`` (``MQL→SAL`` …, ``MQL→SAL accepted``), ``stage,
        window_days`` (null for acceptance), ``n`` (denominator: the cohort's MQLs, or the
        dispositioned MQLs for acceptance), ``n_reached``, ``n_open`` (window still open and
        not reached; for acceptance, MQLs not dispositioned by ``as_of``, left out of its
        rate), ``rate`` (fraction; a lower bound when censored), ``is_censored`` (some
        members' windows still open; always false for acceptance), ``window_closes_at``
        (when the last member's window closes).
        """
        rows = []
        for record in self.counts.itertuples(index=False):
            quarter = Quarter.parse(record.quarter)
            for stage, key, window_attr in COHORT_STEPS:
                days = getattr(self, window_attr)
                n_open = int(getattr(record, f"n_{key}_open"))
                n_reached = int(getattr(record, f"n_{key}"))
                rows.append(
                    {
                        "quarter": record.quarter,
                        "step": f"MQL→{stage}",
                        "stage": stage,
                        "window_days": days,
                        "n": int(record.n_mql),
                        "n_reached": n_reached,
                        "n_open": n_open,
                        "rate": _share(n_reached, record.n_mql),
                        "is_censored": n_open > 0,
                        "window_closes_at": pd.Timestamp(quarter.end_at) + pd.Timedelta(days=days),
                    }
                )
            decided = int(record.n_accepted + record.n_rejected)
            rows.append(
                {
                    "quarter": record.quarter,
                    "step": "MQL→SAL accepted",
                    "stage": "SAL",
                    "window_days": pd.NA,
                    "n": decided,
                    "n_reached": int(record.n_accepted),
                    "n_open": int(record.n_mql) - decided,
                    "rate": _share(record.n_accepted, decided),
                    "is_censored": False,  # pending MQLs may never be dispositioned
                    "window_closes_at": pd.NaT,
                }
            )
        frame = pd.DataFrame(rows)
        frame["window_days"] = frame["window_days"].astype("Int64")
        return frame

    def rate(self, quarter: Quarter | str, stage: str) -> float:
        """Cohort conversion of ``quarter`` to ``stage`` (``SAL``, ``SQL``, ``Customer``) within
        its window, or the acceptance rate for ``stage="accepted"``."""
        step = "MQL→SAL accepted" if stage == "accepted" else f"MQL→{stage}"
        table = self.summary()
        match = table[(table.quarter == str(quarter)) & (table.step == step)]
        if match.empty:
            raise ValueError(f"no cohort {quarter} step {step}; quarters: {self.quarters}")
        return float(match.rate.iloc[0])

    def funnel(self, quarter: Quarter | str) -> pd.DataFrame:
        """One quarter's funnel for a chart: ``stage, n, rate, is_censored`` with MQL = 1."""
        table = self.summary()
        steps = table[(table.quarter == str(quarter)) & (table.step != "MQL→SAL accepted")]
        n_mql = int(steps.n.iloc[0]) if len(steps) else 0
        head = pd.DataFrame(
            {"stage": ["MQL"], "n": [n_mql], "rate": [1.0 if n_mql else float("nan")],
             "is_censored": [False], "window_days": pd.array([pd.NA], dtype="Int64")}
        )  # fmt: skip
        tail = steps.assign(n=steps.n_reached)[
            ["stage", "n", "rate", "is_censored", "window_days"]
        ]
        return pd.concat([head, tail], ignore_index=True)


def measure_cohort_conversion(
    stage_events: ir.Table,
    quarters: Quarter | Iterable[Quarter],
    params: FunnelParams,
    *,
    as_of: datetime | None = None,
    con: ibis.BaseBackend | None = None,
) -> CohortResult:
    """Fixed-window cohort conversion of each quarter's MQLs (SAL, SQL, Customer) and the
    MQL→SAL acceptance rate.

    Parameters
    ----------
    stage_events : ibis.Table
        Contract table.
    quarters : Quarter or iterable of Quarter
        Cohort quarters (by first MQL instant; start included, end excluded).
    params : FunnelParams
        Window lengths (``sal_window_days``, ``sql_window_days``, ``won_window_days``).
    as_of : datetime, optional
        Cut-off (UTC); default: the latest ``entered_at`` in ``stage_events``.
    con : ibis backend, optional
        Where to execute; default: the tables' own backend.

    Returns
    -------
    CohortResult

    Notes
    -----
    Conversion is measured per cohort member over a fixed window after its own MQL, so a
    quarter's rate never mixes cohorts. Members whose window is still open at ``as_of`` and
    who have not converted are counted in ``n_open`` and flag the cohort ``is_censored``
    (right-censored): its rate is then a lower bound, not a measured failure.
    """
    chosen = _quarters(quarters)
    cut = _as_of(as_of, stage_events, None, con)
    flags = build_cohort_flags(
        build_stage_timeline(stage_events),
        params=params,
        as_of=cut.to_pydatetime(),
        start_at=chosen[0].start_at,
        end_at=chosen[-1].end_at,
    )
    counts = _execute(aggregate_cohorts(flags), con)
    labels = [str(q) for q in chosen]
    counts = (
        counts[counts.quarter.isin(labels)]
        .set_index("quarter")
        .reindex(labels, fill_value=0)
        .rename_axis("quarter")
        .reset_index()
    )
    number_cols = [c for c in counts.columns if c.startswith("n_")]
    counts[number_cols] = counts[number_cols].astype("int64")
    log.info("cohort conversion for %s as of %s", ", ".join(labels), cut)
    return CohortResult(
        counts=counts,
        quarters=tuple(labels),
        sal_window_days=params.sal_window_days,
        sql_window_days=params.sql_window_days,
        won_window_days=params.won_window_days,
        as_of=cut,
    )


VELOCITY_STEPS: tuple[tuple[str, str, str], ...] = (
    ("MQL→SAL", "mql_at", "sal_reached_at"),
    ("SAL→SQL", "sal_reached_at", "sql_reached_at"),
    ("SQL→Opportunity", "sql_reached_at", "opportunity_reached_at"),
    ("Opportunity→Customer", "opportunity_reached_at", "customer_reached_at"),
)


@dataclass(frozen=True, slots=True)
class VelocityResult:
    """Time in stage for quarterly MQL cohorts.

    Attributes
    ----------
    durations : pandas.DataFrame
        One row per person and transition: ``person_id, quarter, transition, days``
        (negative durations clipped to 0), ``is_out_of_order``.
    quarters : tuple of str
    as_of : pandas.Timestamp
    """

    durations: pd.DataFrame
    quarters: tuple[str, ...]
    as_of: pd.Timestamp

    def summary(self) -> pd.DataFrame:
        """``quarter, transition, n, median_days, p90_days, n_out_of_order`` (days of 24 h)."""
        rows = []
        for quarter in self.quarters:
            for transition, _start, _end in VELOCITY_STEPS:
                part = self.durations[
                    (self.durations.quarter == quarter) & (self.durations.transition == transition)
                ]
                rows.append(
                    {
                        "quarter": quarter,
                        "transition": transition,
                        "n": len(part),
                        "median_days": _median(part.days),
                        "p90_days": _p90(part.days),
                        "n_out_of_order": int(part.is_out_of_order.sum()),
                    }
                )
        return pd.DataFrame(rows)


def measure_velocity(
    stage_events: ir.Table,
    quarters: Quarter | Iterable[Quarter],
    *,
    as_of: datetime | None = None,
    con: ibis.BaseBackend | None = None,
) -> VelocityResult:
    """Median and 90th-percentile days spent in each stage by each quarter's MQL cohort.

    Time in stage S is from reaching S to reaching the next funnel stage (``*_reached_at``,
    so a skipped stage takes 0 days), among cohort members that reached both by ``as_of``.

    Notes
    -----
    A cohort still inside its windows only shows its fast movers, so recent quarters'
    velocity is biased low (right-censoring); compare quarters whose windows have closed.
    Out-of-order events (a later stage stamped before an earlier one) give negative
    durations; they are clipped to 0 days and counted in ``n_out_of_order``.
    """
    chosen = _quarters(quarters)
    cut = _as_of(as_of, stage_events, None, con)
    cut_lit = ibis.timestamp(cut.to_pydatetime())
    timeline = build_stage_timeline(stage_events).filter(
        _.mql_at >= ibis.timestamp(chosen[0].start_at),
        _.mql_at < ibis.timestamp(chosen[-1].end_at),
        _.mql_at <= cut_lit,
    )
    columns = ["mql_at", *REACHED_COLUMNS.values()]
    frame = _execute(
        timeline.select(
            "person_id", quarter=_quarter_label(_.mql_at), **{c: _[c] for c in columns}
        ),
        con,
    )
    pieces = []
    for transition, start_col, end_col in VELOCITY_STEPS:
        start = pd.to_datetime(frame[start_col], utc=True)
        end = pd.to_datetime(frame[end_col], utc=True)
        known = start.notna() & end.notna() & (start <= cut) & (end <= cut)
        days = (end - start)[known].dt.total_seconds() / 86_400.0
        pieces.append(
            pd.DataFrame(
                {
                    "person_id": frame.person_id[known],
                    "quarter": frame.quarter[known],
                    "transition": transition,
                    "days": days.clip(lower=0.0),
                    "is_out_of_order": days < 0,
                }
            )
        )
    durations = pd.concat(pieces, ignore_index=True)
    return VelocityResult(durations=durations, quarters=tuple(map(str, chosen)), as_of=cut)


# --------------------------------------------------------------------------------------------
# Hand-off SLA and unworked leads
# --------------------------------------------------------------------------------------------


def _lead_frame(
    stage_events: ir.Table,
    touchpoints: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    *,
    start_at: datetime | None,
    end_at: datetime | None,
    as_of: pd.Timestamp,
    con: ibis.BaseBackend | None,
    users: ir.Table | None = None,
) -> pd.DataFrame:
    """Executed :func:`build_lead_facts` cut at ``as_of`` (MQLs after it dropped, touches
    after it forgotten), timestamps as UTC pandas datetimes."""
    facts = build_lead_facts(
        stage_events,
        touchpoints,
        people,
        accounts,
        start_at=start_at,
        end_at=end_at,
        users=users,
    ).filter(_.mql_at <= ibis.timestamp(as_of.to_pydatetime()))
    frame = _execute(facts, con)
    for column in [c for c in frame.columns if c.endswith("_at")]:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    late = frame.first_sales_touch_at > as_of
    frame.loc[late, "first_sales_touch_at"] = pd.NaT
    frame.loc[late, "first_sales_touch_user_id"] = None
    return frame.sort_values(["mql_at", "person_id"], ignore_index=True)


def _add_sla_columns(
    leads: pd.DataFrame,
    *,
    params: FunnelParams,
    as_of: pd.Timestamp,
    workday_hours: tuple[float, float],
    holidays: Sequence[Any],
) -> pd.DataFrame:
    """Add ``sla_hours, hours_to_first_touch, hours_waiting, sla_status`` to the lead frame."""
    options = dict(
        business_hours=params.business_hours, workday_hours=workday_hours, holidays=holidays
    )
    by_segment = {str(k): float(v) for k, v in params.sla_hours_by_segment.items()}
    target = leads.segment.map(by_segment).astype("float64").fillna(float(params.sla_hours))
    hours = hours_between(leads.mql_at, leads.first_sales_touch_at, **options)
    waiting = hours_between(leads.mql_at, as_of, **options)
    touched = leads.first_sales_touch_at.notna().to_numpy()
    status = np.select(
        [touched & (hours <= target.to_numpy()), touched, waiting > target.to_numpy()],
        ["met", "breached", "breached"],
        default="open",
    )
    return leads.assign(
        sla_hours=target.to_numpy(),
        hours_to_first_touch=hours,
        hours_waiting=np.where(touched, np.nan, waiting),
        sla_status=status,
    )


def _compliance_rows(leads: pd.DataFrame, dimension: str, groups: pd.Series) -> list[dict]:
    rows = []
    for group, part in leads.groupby(groups, sort=True, dropna=False):
        n_met = int((part.sla_status == "met").sum())
        n_breached = int((part.sla_status == "breached").sum())
        rows.append(
            {
                "dimension": dimension,
                "group": str(group),
                "n_mql": len(part),
                "n_met": n_met,
                "n_breached": n_breached,
                "n_open": int((part.sla_status == "open").sum()),
                "compliance": _share(n_met, n_met + n_breached),
                "median_hours": _median(part.hours_to_first_touch),
                "p90_hours": _p90(part.hours_to_first_touch),
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class SlaResult:
    """Hand-off SLA of one quarter's MQLs (see the module docstring for the definitions).

    Attributes
    ----------
    leads : pandas.DataFrame
        One row per MQL: the lead facts (:func:`build_lead_facts`) plus ``sla_hours``
        (target), ``hours_to_first_touch`` (NaN when not touched by ``as_of``),
        ``hours_waiting`` (untouched leads: hours from MQL to ``as_of``), ``sla_status``
        (``met``, ``breached``, ``open``).
    quarter : str
    sla_hours : float
        Default target; ``sla_hours_by_segment`` overrides it per segment.
    sla_hours_by_segment : dict
    business_hours : bool
        True: hours are business hours (``workday_hours`` on Monday–Friday, UTC).
    workday_hours : (float, float)
    as_of : pandas.Timestamp
    """

    leads: pd.DataFrame
    quarter: str
    sla_hours: float
    sla_hours_by_segment: dict[str, float]
    business_hours: bool
    workday_hours: tuple[float, float]
    as_of: pd.Timestamp

    @property
    def n(self) -> int:
        """Number of MQLs in the quarter."""
        return len(self.leads)

    @property
    def compliance(self) -> float:
        """Met / (met + breached) over all leads (fraction; NaN when none decided)."""
        return float(self.summary(by=()).compliance.iloc[0])

    @property
    def hours_unit(self) -> str:
        """``"business hours"`` or ``"hours"``, for labels."""
        return "business hours" if self.business_hours else "hours"

    def summary(self, by: Sequence[str] = SLA_DIMENSIONS) -> pd.DataFrame:
        """Compliance overall and per group of each dimension in ``by``.

        Returns ``dimension`` (``all`` first, then each of ``by``), ``group, n_mql, n_met,
        n_breached, n_open, compliance`` (fraction of decided leads), ``median_hours,
        p90_hours`` (to first touch, among touched leads; business hours when
        ``business_hours``).
        """
        unknown = [d for d in by if d not in SLA_DIMENSIONS]
        if unknown:
            raise ValueError(f"by must name columns of {SLA_DIMENSIONS}; got {unknown}")
        leads = self.leads
        rows = _compliance_rows(leads, "all", pd.Series("all", index=leads.index))
        for dimension in by:
            rows += _compliance_rows(leads, dimension, leads[dimension])
        return pd.DataFrame(rows)


def measure_sla_compliance(
    stage_events: ir.Table,
    touchpoints: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    quarter: Quarter,
    params: FunnelParams,
    *,
    workday_hours: tuple[float, float] = (0.0, 24.0),
    holidays: Sequence[Any] = (),
    users: ir.Table | None = None,
    as_of: datetime | None = None,
    con: ibis.BaseBackend | None = None,
) -> SlaResult:
    """Time from MQL to first sales touch and the share within the SLA, for the MQLs of
    ``quarter``.

    Parameters
    ----------
    stage_events, touchpoints, people, accounts : ibis.Table
        Contract tables.
    quarter : Quarter
        MQLs whose first MQL instant is in the quarter (start included, end excluded).
    params : FunnelParams
        ``sla_hours`` (default target, hours), ``sla_hours_by_segment``, ``business_hours``.
    workday_hours : (float, float), default (0, 24)
        Working hours of a business day in UTC clock hours (only when ``business_hours``).
    holidays : sequence of dates, default ()
        Days not counted as business days.
    users : ibis.Table, optional
        When given, a lead's rep is a user of team ``sdr`` or ``sales`` (module docstring).
    as_of : datetime, optional
        Cut-off (UTC); default: the data's last stage event or touch.
    con : ibis backend, optional

    Returns
    -------
    SlaResult

    Notes
    -----
    Business hours count Monday–Friday, 24 h a day in UTC by default, so a lead that became
    an MQL on Friday at 20:00 and was called on Monday at 10:00 waited 14 business hours.
    Leads not touched by ``as_of`` are breached once their target has passed, open before.

    References
    ----------
    .. [1] Oldroyd, J. B., McElheran, K., Elkington, D. (2011). The Short Life of Online
       Sales Leads. Harvard Business Review, March 2011.
    """
    cut = _as_of(as_of, stage_events, touchpoints, con)
    leads = _lead_frame(
        stage_events, touchpoints, people, accounts,
        start_at=quarter.start_at, end_at=quarter.end_at, as_of=cut, con=con, users=users,
    )  # fmt: skip
    leads = _add_sla_columns(
        leads, params=params, as_of=cut, workday_hours=workday_hours, holidays=holidays
    )
    log.info("SLA compliance for %s: %d MQLs", quarter, len(leads))
    return SlaResult(
        leads=leads,
        quarter=str(quarter),
        sla_hours=float(params.sla_hours),
        sla_hours_by_segment={str(k): float(v) for k, v in params.sla_hours_by_segment.items()},
        business_hours=params.business_hours,
        workday_hours=(float(workday_hours[0]), float(workday_hours[1])),
        as_of=cut,
    )


@dataclass(frozen=True, slots=True)
class UnworkedResult:
    """MQLs that sales never worked, or did not work within a window.

    Attributes
    ----------
    leads : pandas.DataFrame
        One row per MQL in scope: lead facts plus ``is_never_worked`` (no sales touch at all
        up to ``as_of``), ``is_unworked_in_window`` (no sales touch within
        ``within_days`` of the MQL, window closed), ``is_window_open`` (not touched yet and
        the window still open at ``as_of``).
    within_days : int
    quarter : str or None
        None: every MQL in the data.
    as_of : pandas.Timestamp
    """

    leads: pd.DataFrame
    within_days: int
    quarter: str | None
    as_of: pd.Timestamp

    @property
    def person_ids(self) -> tuple[str, ...]:
        """Never-worked leads, sorted."""
        return tuple(sorted(self.leads.loc[self.leads.is_never_worked, "person_id"]))

    @property
    def n_never_worked(self) -> int:
        return int(self.leads.is_never_worked.sum())

    def never_worked(self) -> pd.DataFrame:
        """The never-worked leads: ``person_id, mql_at, channel, campaign_id, segment, region,
        rep``, oldest MQL first."""
        columns = ["person_id", "mql_at", "channel", "campaign_id", "segment", "region", "rep"]
        return self.leads.loc[self.leads.is_never_worked, columns].reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """By source channel: ``channel, n_mql, n_never_worked, share_never_worked,
        n_unworked_in_window, n_window_open`` (most never-worked first), then ``all``."""
        leads = self.leads

        def row(channel: str, part: pd.DataFrame) -> dict:
            return {
                "channel": channel,
                "n_mql": len(part),
                "n_never_worked": int(part.is_never_worked.sum()),
                "share_never_worked": _share(part.is_never_worked.sum(), len(part)),
                "n_unworked_in_window": int(part.is_unworked_in_window.sum()),
                "n_window_open": int(part.is_window_open.sum()),
            }

        rows = [row(str(channel), part) for channel, part in leads.groupby("channel", sort=True)]
        rows.sort(key=lambda r: (-r["n_never_worked"], r["channel"]))
        rows.append(row("all", leads))
        return pd.DataFrame(rows)


def find_unworked_leads(
    stage_events: ir.Table,
    touchpoints: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    *,
    quarter: Quarter | None = None,
    within_days: int = 30,
    users: ir.Table | None = None,
    as_of: datetime | None = None,
    con: ibis.BaseBackend | None = None,
) -> UnworkedResult:
    """MQLs never worked by sales (no sales touch at all, up to ``as_of``) and
    MQLs not worked within ``within_days`` (days of 24 h; end instant included), with their
    source channels.

    Parameters
    ----------
    quarter : Quarter, optional
        Only MQLs whose first MQL falls in the quarter; default: every MQL in the data.
    within_days : int, default 30
        The working window (pass ``params.sal_window_days``).
    users : ibis.Table, optional
        When given, a lead's rep is a user of team ``sdr`` or ``sales`` (module docstring).
    as_of : datetime, optional
        Cut-off (UTC); default: the data's last stage event or touch.

    Notes
    -----
    A lead disqualified without any sales touch counts as never worked: nobody from sales
    reached out. A lead whose only sales touches precede its MQL is not never-worked (sales
    knew the person) but is unworked in its window: nobody responded to the MQL. A lead
    whose window is still open and not yet touched is neither unworked in the window nor
    dropped: it is ``is_window_open``.
    """
    if within_days <= 0:
        raise ValueError(f"within_days must be positive; got {within_days}")
    cut = _as_of(as_of, stage_events, touchpoints, con)
    leads = _lead_frame(
        stage_events, touchpoints, people, accounts,
        start_at=quarter.start_at if quarter else None,
        end_at=quarter.end_at if quarter else None,
        as_of=cut, con=con, users=users,
    )  # fmt: skip
    deadline = leads.mql_at + pd.Timedelta(days=within_days)
    touched_in_window = leads.first_sales_touch_at.notna() & (
        leads.first_sales_touch_at <= deadline
    )
    closed = deadline <= cut
    leads = leads.assign(
        is_never_worked=~(leads.first_sales_touch_ever_at <= cut),  # NaT compares False
        is_unworked_in_window=~touched_in_window & closed,
        is_window_open=~touched_in_window & ~closed,
    )
    log.info("unworked leads: %d of %d MQLs never worked", leads.is_never_worked.sum(), len(leads))
    return UnworkedResult(
        leads=leads, within_days=within_days, quarter=str(quarter) if quarter else None, as_of=cut
    )


# --------------------------------------------------------------------------------------------
# Capacity vs inflow
# --------------------------------------------------------------------------------------------

CAPACITY_COLUMNS: tuple[str, ...] = (
    "level", "unit", "region", "n_mql", "mql_per_week", "capacity_per_week", "utilisation",
    "is_over_capacity", "median_hours_to_first_touch", "sla_compliance", "sal_rate",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """MQL inflow per week against SDR capacity, by rep and by region, for one quarter.

    Attributes
    ----------
    is_known : bool
        False when capacity cannot be measured (no ``users`` table, no SDRs, no capacities);
        ``reason`` says why and the frames are empty.
    reason : str or None
    units : pandas.DataFrame
        :data:`CAPACITY_COLUMNS`: ``level`` (``rep`` or ``region``), ``unit`` (user or region
        id), ``region``, ``n_mql`` (may be fractional for reps: split region leads),
        ``mql_per_week``, ``capacity_per_week`` (leads per week), ``utilisation``
        (inflow / capacity), ``is_over_capacity``, ``median_hours_to_first_touch``,
        ``sla_compliance``, ``sal_rate`` (reached SAL within ``sal_window_days`` among leads
        whose window has closed or who reached it).
    leads : pandas.DataFrame
        The SLA lead frame with ``is_over_capacity_region`` and ``is_over_capacity_rep``.
    quarter : str
    n_weeks : float
        The quarter's length in weeks (days / 7).
    """

    is_known: bool
    reason: str | None
    units: pd.DataFrame
    leads: pd.DataFrame
    quarter: str
    n_weeks: float

    @property
    def over_capacity_regions(self) -> tuple[str, ...]:
        units = self.units
        return tuple(sorted(units.loc[(units.level == "region") & units.is_over_capacity, "unit"]))

    @property
    def over_capacity_reps(self) -> tuple[str, ...]:
        units = self.units
        return tuple(sorted(units.loc[(units.level == "rep") & units.is_over_capacity, "unit"]))

    def summary(self, level: str | None = None) -> pd.DataFrame:
        """:attr:`units`, optionally only one ``level`` (``rep`` or ``region``)."""
        if level is None:
            return self.units.copy()
        if level not in ("rep", "region"):
            raise ValueError(f"level must be one of rep, region; got {level!r}")
        return self.units[self.units.level == level].reset_index(drop=True)

    def comparison(self) -> pd.DataFrame:
        """Response and conversion of leads handled over capacity against the others.

        One row per ``level`` (``region``: the lead's region is over capacity; ``rep``: its
        rep is) and ``group`` (``over capacity``, ``within capacity``): ``n_mql,
        median_hours_to_first_touch, sla_compliance, sal_rate``.
        """
        if not self.is_known:
            return pd.DataFrame(columns=["level", "group", "n_mql", "median_hours_to_first_touch",
                                         "sla_compliance", "sal_rate"])  # fmt: skip
        rows = []
        for level, flag in (
            ("region", "is_over_capacity_region"),
            ("rep", "is_over_capacity_rep"),
        ):
            for group, part in (
                ("over capacity", self.leads[self.leads[flag]]),
                ("within capacity", self.leads[~self.leads[flag]]),
            ):
                rows.append({"level": level, "group": group, **_lead_outcomes(part)})
        return pd.DataFrame(rows)


def _lead_outcomes(part: pd.DataFrame) -> dict[str, float]:
    """``n_mql, median_hours_to_first_touch, sla_compliance, sal_rate`` of some leads."""
    met = int((part.sla_status == "met").sum())
    decided = met + int((part.sla_status == "breached").sum())
    known = part.is_sal_decided
    return {
        "n_mql": len(part),
        "median_hours_to_first_touch": _median(part.hours_to_first_touch),
        "sla_compliance": _share(met, decided),
        "sal_rate": _share(part.is_sal_in_window[known].sum(), known.sum()),
    }


def _capacity_unknown(reason: str, quarter: Quarter, n_weeks: float) -> CapacityResult:
    log.info("capacity unknown for %s: %s", quarter, reason)
    return CapacityResult(
        is_known=False,
        reason=reason,
        units=pd.DataFrame(columns=list(CAPACITY_COLUMNS)),
        leads=pd.DataFrame(),
        quarter=str(quarter),
        n_weeks=n_weeks,
    )


def _sdr_frame(users: ir.Table, con: ibis.BaseBackend | None) -> pd.DataFrame:
    """SDR users: ``user_id, team, region, capacity_per_week``."""
    frame = _execute(
        users.select(
            user_id=_.user_id.cast("string"),
            team=_.team.cast("string"),
            region=_optional(users, "region"),
            capacity_per_week=_optional(users, "capacity_leads_per_week", "float64"),
        ),
        con,
    )
    return frame


def measure_capacity(
    stage_events: ir.Table,
    touchpoints: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    users: ir.Table | None,
    quarter: Quarter,
    params: FunnelParams,
    *,
    workday_hours: tuple[float, float] = (0.0, 24.0),
    holidays: Sequence[Any] = (),
    as_of: datetime | None = None,
    con: ibis.BaseBackend | None = None,
) -> CapacityResult:
    """MQLs per rep and region per week against ``users.capacity_leads_per_week``, with the
    response time and conversion of each.

    Parameters
    ----------
    users : ibis.Table or None
        Optional contract table; None (absent) or empty gives a result with
        ``is_known=False`` and a ``reason`` ("capacity unknown: …"), never an error.
    quarter : Quarter
        The MQLs of this quarter are the inflow.
    params : FunnelParams
        SLA settings (response times) and ``sal_window_days`` (conversion).

    Returns
    -------
    CapacityResult

    Notes
    -----
    Inflow per week is the quarter's MQLs divided by the quarter's length in weeks (an
    average: a burst within the quarter is not seen). Reps are the SDR users; a lead's rep is
    its SAL/Disqualified/MQL event owner or first responder (module docstring); leads whose
    rep is not an SDR are split equally among their region's SDRs. An SDR without a
    capacity value is never flagged.
    """
    n_weeks = (quarter.end_at - quarter.start_at).days / 7.0
    if users is None:
        return _capacity_unknown(
            "capacity unknown: no users table in this export", quarter, n_weeks
        )
    sdrs = _sdr_frame(users, con)
    if sdrs.empty:
        return _capacity_unknown("capacity unknown: the users table is empty", quarter, n_weeks)
    sdrs = sdrs[sdrs.team.str.strip().str.lower() == "sdr"]
    if sdrs.empty:
        return _capacity_unknown("capacity unknown: users lists no SDRs", quarter, n_weeks)
    if sdrs.capacity_per_week.isna().all():
        return _capacity_unknown(
            "capacity unknown: users has no capacity_leads_per_week values", quarter, n_weeks
        )
    sla = measure_sla_compliance(
        stage_events, touchpoints, people, accounts, quarter, params,
        workday_hours=workday_hours, holidays=holidays, users=users, as_of=as_of, con=con,
    )  # fmt: skip
    leads = _add_sal_window(sla.leads, params.sal_window_days, sla.as_of)
    regions = _region_capacity(leads, sdrs, n_weeks)
    reps = _rep_capacity(leads, sdrs, n_weeks)
    over_regions = set(regions.loc[regions.is_over_capacity, "unit"])
    over_reps = set(reps.loc[reps.is_over_capacity, "unit"])
    leads = leads.assign(
        is_over_capacity_region=leads.region.isin(over_regions),
        is_over_capacity_rep=leads.rep.isin(over_reps),
    )
    units = pd.concat([regions, reps], ignore_index=True)[list(CAPACITY_COLUMNS)]
    log.info("capacity %s: over capacity regions %s", quarter, sorted(over_regions))
    return CapacityResult(
        is_known=True, reason=None, units=units, leads=leads, quarter=str(quarter), n_weeks=n_weeks
    )


def _add_sal_window(leads: pd.DataFrame, days: int, as_of: pd.Timestamp) -> pd.DataFrame:
    deadline = leads.mql_at + pd.Timedelta(days=days)
    reached = (
        leads.sal_reached_at.notna()
        & (leads.sal_reached_at <= deadline)
        & (leads.sal_reached_at <= as_of)
    )
    return leads.assign(is_sal_in_window=reached, is_sal_decided=reached | (deadline <= as_of))


def _capacity_row(level: str, unit: str, region: str, n_mql: float, capacity: float,
                  n_weeks: float, part: pd.DataFrame) -> dict[str, Any]:  # fmt: skip
    per_week = n_mql / n_weeks
    outcomes = _lead_outcomes(part)
    return {
        "level": level,
        "unit": unit,
        "region": region,
        "n_mql": float(n_mql),
        "mql_per_week": per_week,
        "capacity_per_week": capacity,
        "utilisation": per_week / capacity if capacity and capacity > 0 else float("nan"),
        "is_over_capacity": bool(pd.notna(capacity) and per_week > capacity),
        **{k: v for k, v in outcomes.items() if k != "n_mql"},
    }


def _region_capacity(leads: pd.DataFrame, sdrs: pd.DataFrame, n_weeks: float) -> pd.DataFrame:
    capacity = sdrs.dropna(subset=["region"]).groupby("region").capacity_per_week.sum(min_count=1)
    regions = sorted(set(leads.region) | set(capacity.index))
    rows = [
        _capacity_row(
            "region",
            region,
            region,
            float((leads.region == region).sum()),
            float(capacity.get(region, np.nan)),
            n_weeks,
            leads[leads.region == region],
        )  # fmt: skip
        for region in regions
    ]
    return pd.DataFrame(rows, columns=list(CAPACITY_COLUMNS))


def _rep_capacity(leads: pd.DataFrame, sdrs: pd.DataFrame, n_weeks: float) -> pd.DataFrame:
    is_sdr = leads.rep.isin(set(sdrs.user_id))
    owned = leads[is_sdr]
    pool = leads[~is_sdr].groupby("region").size()  # no SDR rep: shared by the region's SDRs
    sdr_regions = sdrs.dropna(subset=["region"]).groupby("region").user_id.nunique()
    capacity = sdrs.set_index("user_id").capacity_per_week
    home = sdrs.set_index("user_id").region
    rows = []
    for rep in sorted(set(sdrs.user_id)):
        region = home.get(rep)
        shared = 0.0
        if region is not None and pd.notna(region) and region in pool.index:
            shared = pool[region] / sdr_regions[region]
        mine = owned[owned.rep == rep]
        if region is None or pd.isna(region):
            region = mine.region.mode().iloc[0] if len(mine) else UNKNOWN_LABEL
        rows.append(
            _capacity_row(
                "rep",
                rep,
                str(region),
                len(mine) + shared,
                float(capacity.get(rep, np.nan)),
                n_weeks,
                mine,
            )  # fmt: skip
        )
    return pd.DataFrame(rows, columns=list(CAPACITY_COLUMNS))


# --------------------------------------------------------------------------------------------
# Dispositions (closed loop)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DispositionResult:
    """Disqualification and recycle reasons by source channel and campaign; recycled leads
    that later converted.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per person and disposition (first entry): ``person_id, disposition``
        (``Disqualified``/``Recycled``), ``entered_at, reason`` (``(none)`` when empty),
        ``channel, campaign_id`` (source).
    recycled : pandas.DataFrame
        One row per recycled person in scope: ``person_id, recycled_at, recycled_reason,
        converted_at`` (first SQL-or-later entry after the recycle, null if none),
        ``channel``.
    quarter : str or None
        Dispositions entered in this quarter; None: all.
    """

    events: pd.DataFrame
    recycled: pd.DataFrame
    quarter: str | None

    def by(self, column: str = "channel") -> pd.DataFrame:
        """``disposition, <column>, reason, n, share`` (share of that disposition within the
        channel or campaign), sorted by disposition, group and descending count."""
        if column not in ("channel", "campaign_id"):
            raise ValueError(f"column must be one of channel, campaign_id; got {column!r}")
        counts = (
            self.events.groupby(["disposition", column, "reason"]).size().rename("n").reset_index()
        )
        totals = counts.groupby(["disposition", column]).n.transform("sum")
        counts["share"] = counts.n / totals
        return counts.sort_values(
            ["disposition", column, "n", "reason"], ascending=[True, True, False, True],
            ignore_index=True,
        )  # fmt: skip

    def summary(self) -> pd.DataFrame:
        """Reasons by source channel (:meth:`by`)."""
        return self.by("channel")

    def wide(self) -> pd.DataFrame:
        """Reason shares side by side: one row per disposition and source channel, then an
        ``all`` row per disposition; columns ``disposition, channel, n`` and one column per
        reason (fraction of that row's ``n``; NaN for a reason never given for that
        disposition; reasons by overall frequency)."""
        events = self.events
        columns = ["disposition", "channel", "n"]
        if events.empty:
            return pd.DataFrame(columns=columns)
        order = events.reason.value_counts().index.tolist()
        everything = events.assign(channel="all")
        frames = []
        for disposition in sorted(events.disposition.unique()):
            part = pd.concat(
                [events[events.disposition == disposition],
                 everything[everything.disposition == disposition]]
            )  # fmt: skip
            counts = pd.crosstab(part.channel, part.reason).reindex(columns=order, fill_value=0)
            channels = sorted(c for c in counts.index if c != "all") + ["all"]
            counts = counts.reindex(channels)
            n = counts.sum(axis=1)
            shares = counts.div(n, axis=0)
            shares.loc[:, counts.sum(axis=0) == 0] = np.nan  # reason never given here
            shares.insert(0, "n", n)
            shares.insert(0, "disposition", disposition)
            frames.append(shares.rename_axis("channel").reset_index())
        wide = pd.concat(frames, ignore_index=True)
        wide.columns.name = None
        return wide[["disposition", "channel", "n", *order]]

    def reasons(self) -> pd.DataFrame:
        """``disposition, reason, n, share`` over all channels."""
        counts = self.events.groupby(["disposition", "reason"]).size().rename("n").reset_index()
        counts["share"] = counts.n / counts.groupby("disposition").n.transform("sum")
        return counts.sort_values(["disposition", "n"], ascending=[True, False], ignore_index=True)

    def recycled_conversion(self) -> pd.DataFrame:
        """Recycled leads that later converted (SQL or beyond), by source channel and ``all``:
        ``channel, n_recycled, n_converted, rate``."""
        recycled = self.recycled
        rows = []
        for channel, part in [*recycled.groupby("channel", sort=True), ("all", recycled)]:
            n_conv = int(part.converted_at.notna().sum())
            rows.append({"channel": str(channel), "n_recycled": len(part), "n_converted": n_conv,
                         "rate": _share(n_conv, len(part))})  # fmt: skip
        return pd.DataFrame(rows)


def summarise_disqualifications(
    stage_events: ir.Table,
    touchpoints: ir.Table,
    *,
    quarter: Quarter | None = None,
    con: ibis.BaseBackend | None = None,
) -> DispositionResult:
    """Disqualification and recycle reasons by source channel and campaign, and recycled
    leads that later reached SQL or beyond.

    Parameters
    ----------
    quarter : Quarter, optional
        Only dispositions whose first entry falls in the quarter (start included, end
        excluded); default: all.

    Notes
    -----
    Each person counts once per disposition, with the reason of the first such event
    (first entry per person and stage). A recycled lead converted when any SQL,
    Opportunity or Customer event (repeats included) follows its first recycle.
    """
    firsts = first_stage_events(stage_events).filter(_.stage.isin(DISPOSITIONS))
    if quarter is not None:
        firsts = firsts.filter(
            _.entered_at >= ibis.timestamp(quarter.start_at),
            _.entered_at < ibis.timestamp(quarter.end_at),
        )
    sources = build_source_touches(touchpoints)
    events = _left_join(firsts, sources, "person_id").select(
        "person_id",
        disposition=_.stage,
        entered_at=_.entered_at,
        reason=_.reason.fill_null(NONE_LABEL),
        channel=_.source_channel.fill_null(NONE_LABEL),
        campaign_id=_.source_campaign_id.fill_null(NONE_LABEL),
    )
    recycled = _left_join(build_recycled_outcomes(stage_events), sources, "person_id")
    if quarter is not None:
        recycled = recycled.filter(
            _.recycled_at >= ibis.timestamp(quarter.start_at),
            _.recycled_at < ibis.timestamp(quarter.end_at),
        )
    recycled = recycled.select(
        "person_id", "recycled_at", "converted_at",
        recycled_reason=_.recycled_reason.fill_null(NONE_LABEL),
        channel=_.source_channel.fill_null(NONE_LABEL),
    )  # fmt: skip
    events_frame = _execute(events, con).sort_values(
        ["disposition", "person_id"], ignore_index=True
    )
    recycled_frame = _execute(recycled, con).sort_values("person_id", ignore_index=True)
    for frame in (events_frame, recycled_frame):
        for column in [c for c in frame.columns if c.endswith("_at")]:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return DispositionResult(
        events=events_frame, recycled=recycled_frame, quarter=str(quarter) if quarter else None
    )


# --------------------------------------------------------------------------------------------
# Headline KPIs
# --------------------------------------------------------------------------------------------

KPI_LABEL = "tbl-funnel-kpis"


@dataclass(frozen=True, slots=True)
class KpiSpec:
    """How one KPI is reported: name, unit, whether higher is better, headline candidate."""

    name: str
    unit: str
    higher_is_better: bool = True
    headline: bool = False


@dataclass(frozen=True, slots=True)
class KpiResult:
    """The funnel's headline KPIs per quarter (docs/notebooks.md, item 5).

    Attributes
    ----------
    kpis : pandas.DataFrame
        ``kpi, quarter, value, unit, source, headline, higher_is_better, note``; one row per
        KPI and quarter, oldest quarter first.
    quarter : str
        The report quarter.
    assumptions : dict
        Stated assumptions, e.g. ``gross_margin`` and ``annual_churn_rate`` of the CLV
        estimate, and ``clv_formula``.
    """

    kpis: pd.DataFrame
    quarter: str
    assumptions: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """The tidy KPI frame (saved as ``kpis-funnel_sla``)."""
        return self.kpis.copy()

    def changes(self) -> pd.DataFrame:
        """Wide view for the report: ``kpi, unit, <quarters…>, change`` where ``change`` is the
        report quarter against the one before it: a difference in fraction points for
        fractions (0.05 = +5 pts), a relative change otherwise (0.10 = +10 %)."""
        wide = self.kpis.pivot_table(
            index="kpi", columns="quarter", values="value", aggfunc="first", dropna=False
        )
        order = list(dict.fromkeys(self.kpis.kpi))
        units = self.kpis.drop_duplicates("kpi").set_index("kpi").unit
        wide = wide.reindex(order)
        quarters = sorted(c for c in wide.columns)
        out = wide[quarters].reset_index()
        out.insert(1, "unit", out.kpi.map(units))
        previous = str(Quarter.parse(self.quarter).previous())
        if self.quarter in out and previous in out:
            current, before = out[self.quarter].astype(float), out[previous].astype(float)
            relative = (current / before.where(before != 0)) - 1
            out["change"] = (current - before).where(out.unit == "fraction", relative)
        else:
            out["change"] = np.nan
        out.columns.name = None
        return out


KPI_SPECS: dict[str, KpiSpec] = {
    spec.name: spec
    for spec in (
        KpiSpec("MQLs", "count", headline=True),
        KpiSpec("MQL→SAL conversion", "fraction", headline=True),
        KpiSpec("MQL→SQL conversion", "fraction", headline=True),
        KpiSpec("MQL→SAL acceptance rate", "fraction"),
        KpiSpec("SLA compliance", "fraction", headline=True),
        KpiSpec("Median hours to first sales touch", "hours", higher_is_better=False),
        KpiSpec("Pipeline created", "currency", headline=True),
        KpiSpec("Marketing-sourced pipeline", "currency"),
        KpiSpec("Sales-sourced pipeline", "currency"),
        KpiSpec("Marketing-sourced share of pipeline", "fraction"),
        KpiSpec("Revenue (won)", "currency", headline=True),
        KpiSpec("Win rate", "fraction", headline=True),
        KpiSpec("Average deal size", "currency"),
        KpiSpec("Sales cycle (median days, won)", "days", higher_is_better=False),
        KpiSpec("Customer lifetime value (estimate)", "currency"),
    )
}


def _opportunity_kpis(opps: pd.DataFrame, quarter: str) -> dict[str, float]:
    """Pipeline, revenue, win rate, deal size and cycle of one quarter from the sourced opps."""
    created = opps[opps.created_quarter == quarter]
    closed = opps[(opps.closed_quarter == quarter) & opps.is_won.notna()]
    won = closed[closed.is_won.astype(bool)]
    pipeline = float(created.amount.fillna(0).sum())
    marketing = float(created.loc[created.source == "marketing", "amount"].fillna(0).sum())
    cycle_days = (won.closed_at - won.created_at).dt.total_seconds() / 86_400.0
    return {
        "Pipeline created": pipeline,
        "Marketing-sourced pipeline": marketing,
        "Sales-sourced pipeline": float(
            created.loc[created.source == "sales", "amount"].fillna(0).sum()
        ),
        "Marketing-sourced share of pipeline": _share(marketing, pipeline),
        "Revenue (won)": float(won.amount.fillna(0).sum()),
        "Win rate": _share(len(won), len(closed)),
        "Average deal size": float(won.amount.mean()) if len(won) else float("nan"),
        "Sales cycle (median days, won)": _median(cycle_days),
    }


def compute_kpis(
    stage_events: ir.Table,
    touchpoints: ir.Table,
    opportunities: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    quarter: Quarter,
    params: FunnelParams,
    *,
    n_previous: int = 3,
    gross_margin: float = 0.7,
    annual_churn_rate: float = 0.2,
    currency: str = "USD",
    notebook: str = "funnel_sla",
    workday_hours: tuple[float, float] = (0.0, 24.0),
    holidays: Sequence[Any] = (),
    as_of: datetime | None = None,
    con: ibis.BaseBackend | None = None,
) -> KpiResult:
    """The funnel's KPIs for ``quarter`` and the ``n_previous`` quarters before it.

    KPIs (per quarter; cohort KPIs by the MQL's quarter, opportunity KPIs by creation or
    closing quarter):

    - **MQLs**: people whose first MQL is in the quarter (count).
    - **MQL→SAL / MQL→SQL conversion**: cohort rates within ``sal_window_days`` /
      ``sql_window_days`` (:func:`measure_cohort_conversion`); **acceptance rate**.
    - **SLA compliance**, **median hours to first sales touch** (:func:`measure_sla_compliance`).
    - **Pipeline created**: sum of ``amount`` of opportunities created in the quarter;
      split into **marketing-** and **sales-sourced** pipeline and the marketing share
      (:func:`build_opportunity_sources`).
    - **Revenue (won)**: sum of ``amount`` of won opportunities closed in the quarter.
    - **Win rate**: won / (won + lost) among opportunities closed in the quarter (both from
      the same closed set, so no cohorts are mixed).
    - **Average deal size**: mean ``amount`` of those won.
    - **Sales cycle**: median days from ``created_at`` to ``closed_at`` of those won.
    - **Customer lifetime value (estimate)**: average deal size × ``gross_margin`` /
      ``annual_churn_rate``, taking a won deal's amount as one year's revenue of a customer
      who stays on average 1 / ``annual_churn_rate`` years. Both are assumptions, not
      measured (defaults 0.7 and 0.2 give CLV = 3.5 × average deal).

    Parameters
    ----------
    quarter : Quarter
        The report quarter.
    n_previous : int, default 3
        Earlier quarters to compare.
    gross_margin : float, default 0.7
        Gross margin as a fraction of revenue (assumption).
    annual_churn_rate : float, default 0.2
        Share of customers lost per year (assumption); must be positive.
    currency : str, default "USD"
        Unit of money KPIs.
    notebook : str, default "funnel_sla"
        Notebook name used in ``source`` (``notebook#tbl-funnel-kpis``).

    as_of : datetime, optional
        Cut-off (UTC); default as in :func:`measure_cohort_conversion` for the cohort KPIs
        and :func:`measure_sla_compliance` for the SLA KPIs, so each KPI equals the number
        in that function's table.

    Returns
    -------
    KpiResult
        ``headline`` marks the headline candidates; a cohort rate whose report-quarter cohort
        is still censored is not a headline (its ``note`` says it is a lower bound).
    """
    if not 0 < gross_margin <= 1:
        raise ValueError(f"gross_margin must be in (0, 1]; got {gross_margin}")
    if not 0 < annual_churn_rate <= 1:
        raise ValueError(f"annual_churn_rate must be in (0, 1]; got {annual_churn_rate}")
    if n_previous < 0:
        raise ValueError(f"n_previous must be >= 0; got {n_previous}")
    quarters = tuple(quarter.previous(i) for i in range(n_previous, 0, -1)) + (quarter,)
    cut = _as_of(as_of, stage_events, touchpoints, con)
    # Each part keeps its own function's default cut-off (cohorts: last stage event; SLA:
    # last stage event or touch), so every KPI equals the number its own table shows.
    cohort_cut = _utc(as_of) if as_of is not None else find_data_end(stage_events, con=con)
    cohorts = measure_cohort_conversion(stage_events, quarters, params, as_of=cohort_cut, con=con)
    cohort_table = cohorts.summary()
    opps = _execute(build_opportunity_sources(opportunities, touchpoints, people), con)
    for column in ("created_at", "closed_at"):
        opps[column] = pd.to_datetime(opps[column], utc=True)
    opps = opps.assign(
        created_quarter=_quarter_column(opps.created_at),
        closed_quarter=_quarter_column(opps.closed_at),
    )
    leads = _lead_frame(
        stage_events, touchpoints, people, accounts,
        start_at=quarters[0].start_at, end_at=quarters[-1].end_at, as_of=cut, con=con,
    )  # fmt: skip
    leads = _add_sla_columns(
        leads, params=params, as_of=cut, workday_hours=workday_hours, holidays=holidays
    )
    rows = []
    for q in map(str, quarters):
        values: dict[str, tuple[float, str]] = {}
        for step, name in (("MQL→SAL", "MQL→SAL conversion"), ("MQL→SQL", "MQL→SQL conversion"),
                           ("MQL→SAL accepted", "MQL→SAL acceptance rate")):  # fmt: skip
            row = cohort_table[(cohort_table.quarter == q) & (cohort_table.step == step)].iloc[0]
            if row.is_censored:
                note = f"right-censored: {row.n_open} of {row.n} still open, a lower bound"
            elif step == "MQL→SAL accepted" and row.n_open:
                note = f"{row.n_open} MQLs not dispositioned, left out"
            else:
                note = ""
            values[name] = (float(row.rate), note)
        values["MQLs"] = (float(cohorts.counts.set_index("quarter").at[q, "n_mql"]), "")
        part = leads[leads.quarter == q]
        decided = part.sla_status.isin(["met", "breached"])
        values["SLA compliance"] = (
            _share((part.sla_status == "met").sum(), decided.sum()),
            f"{int((part.sla_status == 'open').sum())} MQLs still inside the SLA"
            if (~decided).any()
            else "",
        )
        values["Median hours to first sales touch"] = (
            _median(part.hours_to_first_touch),
            "business hours (Mon–Fri, UTC)" if params.business_hours else "elapsed hours",
        )
        for name, value in _opportunity_kpis(opps, q).items():
            values[name] = (value, "")
        average = values["Average deal size"][0]
        values["Customer lifetime value (estimate)"] = (
            average * gross_margin / annual_churn_rate,
            f"average deal × gross margin {gross_margin:g} / annual churn {annual_churn_rate:g}",
        )
        for name, spec in KPI_SPECS.items():
            value, note = values[name]
            rows.append(
                {
                    "kpi": name,
                    "quarter": q,
                    "value": value,
                    "unit": currency if spec.unit == "currency" else spec.unit,
                    "source": f"{notebook}#{KPI_LABEL}",
                    "headline": spec.headline,
                    "higher_is_better": spec.higher_is_better,
                    "note": note,
                }
            )
    kpis = pd.DataFrame(rows)
    censored = kpis[
        (kpis.quarter == str(quarter)) & kpis.note.str.startswith("right-censored")
    ].kpi
    kpis.loc[kpis.kpi.isin(set(censored)), "headline"] = False
    return KpiResult(
        kpis=kpis,
        quarter=str(quarter),
        assumptions={
            "gross_margin": gross_margin,
            "annual_churn_rate": annual_churn_rate,
            "clv_formula": "CLV = average won deal × gross_margin / annual_churn_rate",
            "currency": currency,
            "as_of": cut,
        },
    )
