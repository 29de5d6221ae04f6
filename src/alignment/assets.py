"""Content assets: what sales uses, what buyers read, what is wasted, what goes with won deals.

Two layers, as everywhere in the package:

- **Ibis expressions** (take and return ``ibis.Table``, execute nothing) do the row-level work
  on the ``assets`` and ``asset_events`` tables: :func:`prepare_asset_events`,
  :func:`share_events`, :func:`buyer_events`, :func:`split_visits`, :func:`summarise_visits`,
  :func:`share_engagement`, :func:`rep_asset_usage`, :func:`buyer_event_counts`,
  :func:`asset_status`, :func:`closed_deals`, :func:`deal_asset_links`.
- **Verbs** execute a few small aggregates each and return a frozen results object with
  ``summary()``: :func:`measure_asset_usage`, :func:`measure_buyer_engagement`,
  :func:`find_unused_assets`, :func:`find_stale_assets`, :func:`find_coverage_gaps`,
  :func:`associate_assets_with_deals`; then :func:`list_unused_and_stale`,
  :func:`summarise_quarters` and :func:`build_asset_kpis` combine them for the report.
  Statistics (Wilson and Newcombe intervals, the Mantel-Haenszel risk difference,
  quarter-over-quarter change) run on those small pandas frames.

Definitions (all timestamps UTC; a quarter is ``[start, end)`` as in
:class:`alignment.params.Quarter`):

- **Use** of an asset: a ``share`` or ``present`` event, i.e. a person at the vendor put the
  asset in front of buyers. ``internal_view`` events are counted (``n_internal_views``) but are
  not use. An event's quarter is the quarter of its ``ts``.
- **Reps**: users of team ``sales`` or ``sdr`` in ``users``; a user id on an event that is not
  in ``users`` counts as a rep of team ``"(unknown)"``. Without a ``users`` table every user id
  is a rep and the reps of a quarter are the users with any asset event in it.
- **Internal vs buyer events**: an event with a ``user_id`` was made by someone at the vendor.
  Buyer events are ``external_view``, ``download``, ``print`` and ``forward`` events *without*
  a ``user_id``; an ``external_view`` that carries a ``user_id`` (the sharing rep opening their
  own link, or any colleague) is an internal view, never a buyer view.
- **Share**: one ``share_id`` (a share event without one is its own share, keyed by its
  ``event_id``; a repeated share id keeps its first event). A buyer event belongs to the share
  named by its ``share_id``; it counts in the quarter the share was sent (the share cohort),
  even if the buyer opened it later. Buyer events whose share id matches no share event are
  *unlinked*: they count in visits and the device mix (in the quarter they happened) but not
  in the per-share rates.
- Usage counts *share events* (``n_shares`` in :func:`measure_asset_usage`); engagement counts
  *shares* (distinct share ids, at their first event). They agree when every share event has
  its own share id, as CRM exports normally do.
- A share is **opened** when it has at least one buyer ``external_view``. **Buyer view rate**
  = opened shares / shares. **Views per share** = buyer external views / shares.
- **Completion** of a view = ``pages_viewed / pages_total`` capped at 1 (null when either is
  missing or ``pages_total <= 0``); of a share or visit, the largest completion of its views.
  **Time viewed** = the sum of the known ``duration_s`` of buyer external views, in seconds
  (0 for an unopened share; unknown, not 0, when no view has a duration).
- **Visits** (:func:`split_visits`): a viewer is one person (``person_id``; anonymous buyers of
  one share are one viewer, ``"(anonymous)"``) on one share (unlinked events: on one asset).
  Their buyer events are ordered by ``ts`` then ``event_id``; a gap of *more than*
  ``visit_gap_minutes`` starts a new visit, so a gap of exactly 10 minutes stays in the visit
  and 10 minutes 1 second starts a new one.
- **Stale**: an asset is stale from ``stale_since`` = the earlier of ``last_updated_at +
  stale_days`` (``last_updated_at`` is ``updated_at``, else ``created_at``) and ``expires_at``.
  It is stale in a quarter when ``stale_since < end`` (stale by the quarter's end);
  ``n_shares_while_stale`` counts the quarter's shares (``share`` events) at or after
  ``stale_since``, and a stale asset is *still being sent* when that count is positive: a
  share before the asset turned stale does not count, presenting is not sending.
- **Unused** in a quarter: an asset created before the quarter's end with no share and no
  present event in the quarter. **Shared, never opened**: shared in the quarter, and no share
  of the quarter was opened. **Never used**: no asset event of any kind in the whole export
  (nobody shared, presented or even opened it); **never shared**: no share or present event
  in the whole export (internal views only, at most).
- **Deals** are opportunities closed in the quarter (``closed_at`` and ``is_won`` not null).
  An asset event belongs to a deal when its ``opp_id`` is the deal's, or its person is in the
  deal's buying group (``opportunity_people``), or, for a deal with no people listed, its
  account is the deal's account (``account_id``, else the person's account from ``people``).
  It counts only strictly before ``closed_at`` (and, with ``lookback_days``, not before
  ``created_at - lookback_days``). A deal is *viewed* when a buyer external view belongs to it,
  *shared* when a share or present event does. The win rate of deals where an asset was
  shared is compared with comparable deals (same segment, closed in the same quarter) where
  it was not, segment by segment, and the differences are pooled with the Mantel-Haenszel
  risk difference (Sato's variance, Wald interval), so a different segment mix of shared
  and comparable deals does not pass for a difference: **correlational, not causal**; reps
  choose which assets to send, and to whom.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from ibis import _
from scipy import stats

from alignment.params import Quarter
from alignment.store import strip_text

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = (
    "internal_view",
    "share",
    "external_view",
    "download",
    "print",
    "forward",
    "present",
)
USAGE_EVENT_TYPES: tuple[str, ...] = ("share", "present")
"""Event types that count as a use of the asset with buyers."""
BUYER_EVENT_TYPES: tuple[str, ...] = ("external_view", "download", "print", "forward")
"""Event types that are buyer events when no internal user made them."""
REP_TEAMS: tuple[str, ...] = ("sales", "sdr")
FUNNEL_STAGES: tuple[str, ...] = ("awareness", "consideration", "decision")
UNKNOWN = "(unknown)"
ANONYMOUS = "(anonymous)"
CORRELATIONAL = "correlational, not causal"
NO_EVENTS = "No asset events in this export."
NO_ASSETS = "No assets table in this export."
NO_DEALS = "No closed opportunities in the selected quarters."

TS_UTC = "timestamp('UTC')"
_EVENT_OPTIONAL: dict[str, str] = {
    "user_id": "string",
    "person_id": "string",
    "account_id": "string",
    "opp_id": "string",
    "share_id": "string",
    "device": "string",
    "duration_s": "float64",
    "pages_viewed": "float64",
    "pages_total": "float64",
}
_ASSET_OPTIONAL: dict[str, str] = {
    "funnel_stage": "string",
    "persona": "string",
    "owner_team": "string",
    "updated_at": TS_UTC,
    "expires_at": TS_UTC,
}
ASSET_COLUMNS: tuple[str, ...] = (
    "asset_id",
    "title",
    "type",
    "funnel_stage",
    "persona",
    "owner_team",
    "created_at",
    "updated_at",
    "expires_at",
)
DIMENSIONS: tuple[str, ...] = ("type", "funnel_stage", "persona", "owner_team")
"""Asset columns that results can be grouped by (besides ``asset_id``)."""

QuarterLike = Quarter | str


# --------------------------------------------------------------------------------------------
# quarters


def as_quarters(quarters: QuarterLike | Iterable[QuarterLike]) -> tuple[Quarter, ...]:
    """Quarters as sorted, distinct :class:`Quarter` objects; refuse an empty selection.

    Examples
    --------
    >>> [str(q) for q in as_quarters(["2026Q3", "2026Q2", "2026Q3"])]
    ['2026Q2', '2026Q3']
    """
    if isinstance(quarters, (str, Quarter)):
        quarters = [quarters]
    parsed = sorted({q if isinstance(q, Quarter) else Quarter.parse(str(q)) for q in quarters})
    if not parsed:
        raise ValueError("quarters must name at least one quarter, e.g. ['2026Q3']")
    return tuple(parsed)


def quarter_label(ts: ir.TimestampValue) -> ir.StringValue:
    """``YYYYQn`` of a UTC timestamp column (Ibis expression)."""
    return ts.year().cast("string") + "Q" + ts.quarter().cast("string")


def quarter_bounds(quarters: QuarterLike | Iterable[QuarterLike]) -> ir.Table:
    """A small table ``quarter, start_at, end_at`` (UTC; ``end_at`` excluded)."""
    chosen = as_quarters(quarters)
    frame = pd.DataFrame(
        {
            "quarter": pd.Series([str(q) for q in chosen], dtype=object),
            "start_at": pd.Series([q.start_at for q in chosen], dtype="datetime64[us, UTC]"),
            "end_at": pd.Series([q.end_at for q in chosen], dtype="datetime64[us, UTC]"),
        }
    )
    return ibis.memtable(frame, schema={"quarter": "string", "start_at": TS_UTC, "end_at": TS_UTC})


def _labels(quarters: Sequence[Quarter]) -> list[str]:
    return [str(q) for q in quarters]


# --------------------------------------------------------------------------------------------
# Ibis layer: preparation


def _with_optional(table: ir.Table, optional: dict[str, str]) -> ir.Table:
    """Add each missing optional column as typed nulls."""
    missing = {
        name: ibis.null(dtype) for name, dtype in optional.items() if name not in table.columns
    }
    return table.mutate(**missing) if missing else table


def _require(table: ir.Table, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the required columns {', '.join(missing)}")


def _utc(column: ir.Value) -> ir.TimestampValue:
    """A timestamp column in UTC: a tz-aware column as it is, a naive one taken as UTC.

    Not casting an aware column matters: sqlglot refuses ``EXTRACT`` (quarters) from an
    explicit ``CAST(... AS TIMESTAMPTZ)`` on DuckDB.
    """
    dtype = column.type()
    if dtype.is_timestamp() and dtype.timezone is not None:
        return column
    return column.cast(TS_UTC)


def _id(col: ir.Value) -> ir.StringValue:
    """An id column as trimmed text (integer ids become their decimal text)."""
    return strip_text(col.cast("string"))


def prepare_assets(assets: ir.Table, *, stale_days: int = 365) -> ir.Table:
    """Contract ``assets`` with every optional column present and staleness dates added.

    Parameters
    ----------
    assets : ibis.Table
        The ``assets`` table (``asset_id, title, type, created_at`` required).
    stale_days : int, default 365
        Days (of 24 h) after the last update from which an asset is stale.

    Returns
    -------
    ibis.Table
        :data:`ASSET_COLUMNS` plus ``last_updated_at`` (``updated_at``, else ``created_at``),
        ``stale_by_age_at`` (``last_updated_at + stale_days``) and ``stale_since`` (the
        earlier of ``stale_by_age_at`` and ``expires_at``), all timestamps UTC; null
        ``type``, ``funnel_stage``, ``persona``, ``owner_team`` become ``"(unknown)"``.
    """
    _check_positive("stale_days", stale_days)
    _require(assets, ("asset_id", "title", "type", "created_at"), "assets")
    table = _with_optional(assets, _ASSET_OPTIONAL)
    table = table.select(
        asset_id=_id(_.asset_id),
        title=_.title.cast("string"),
        type=strip_text(_.type.cast("string")).fill_null(UNKNOWN),
        funnel_stage=strip_text(_.funnel_stage.cast("string")).lower().fill_null(UNKNOWN),
        persona=strip_text(_.persona.cast("string")).fill_null(UNKNOWN),
        owner_team=strip_text(_.owner_team.cast("string")).fill_null(UNKNOWN),
        created_at=_utc(table.created_at),
        updated_at=_utc(table.updated_at),
        expires_at=_utc(table.expires_at),
    )
    table = table.mutate(last_updated_at=_.updated_at.fill_null(_.created_at))
    table = table.mutate(stale_by_age_at=_.last_updated_at + ibis.interval(days=int(stale_days)))
    return table.mutate(
        # the earlier of the two; a null expires_at never wins
        stale_since=ibis.ifelse(
            _.expires_at.notnull() & (_.expires_at < _.stale_by_age_at),
            _.expires_at,
            _.stale_by_age_at,
        )
    )


def prepare_asset_events(events: ir.Table, *, people: ir.Table | None = None) -> ir.Table:
    """Contract ``asset_events`` with optional columns present and the flags used everywhere.

    Parameters
    ----------
    events : ibis.Table
        The ``asset_events`` table (``event_id, asset_id, ts, event_type`` required).
    people : ibis.Table, optional
        Fills a missing ``account_id`` from the event's person.

    Returns
    -------
    ibis.Table
        All contract columns (ids as text, ``event_type`` lower-case, ``ts`` UTC) plus
        ``quarter`` (of ``ts``), ``is_usage`` (share or present), ``is_buyer_event`` (a buyer
        event type with no ``user_id``), ``is_internal_view`` (``internal_view``, or an
        ``external_view`` made by an internal user) and ``completion`` (``pages_viewed /
        pages_total`` capped at 1; null when either is missing or ``pages_total <= 0``).
    """
    _require(events, ("event_id", "asset_id", "ts", "event_type"), "asset_events")
    table = _with_optional(events, _EVENT_OPTIONAL)
    table = table.select(
        event_id=_id(_.event_id),
        asset_id=_id(_.asset_id),
        ts=_utc(table.ts),
        quarter=quarter_label(table.ts),  # from the column as stored: see _utc
        event_type=strip_text(_.event_type.cast("string")).lower(),
        user_id=_id(_.user_id),
        person_id=_id(_.person_id),
        account_id=_id(_.account_id),
        opp_id=_id(_.opp_id),
        share_id=_id(_.share_id),
        device=strip_text(_.device.cast("string")).lower().fill_null(UNKNOWN),
        duration_s=_.duration_s.cast("float64"),
        pages_viewed=_.pages_viewed.cast("float64"),
        pages_total=_.pages_total.cast("float64"),
    )
    if people is not None:
        lookup = people.select(person_id=_id(_.person_id), person_account_id=_id(_.account_id))
        table = (
            table.left_join(lookup, "person_id")
            .mutate(account_id=_.account_id.fill_null(_.person_account_id))
            .drop("person_account_id")
        )
    ratio = ibis.ifelse(_.pages_total > 0, _.pages_viewed / _.pages_total, ibis.null("float64"))
    is_internal_user = _.user_id.notnull()
    return table.mutate(
        is_usage=_.event_type.isin(USAGE_EVENT_TYPES),
        is_buyer_event=_.event_type.isin(BUYER_EVENT_TYPES) & ~is_internal_user,
        is_internal_view=(_.event_type == "internal_view")
        | ((_.event_type == "external_view") & is_internal_user),
        completion=ratio,
    ).mutate(
        # `_` is now one row per event with its raw ratio; cap it (null stays null)
        completion=ibis.ifelse(_.completion > 1.0, 1.0, _.completion),
    )


# --------------------------------------------------------------------------------------------
# Ibis layer: shares, buyer events and visits


def share_events(events: ir.Table) -> ir.Table:
    """One row per share: ``share_id, asset_id, sender_user_id, shared_at, share_quarter,
    recipient_person_id, recipient_account_id, share_opp_id``.

    ``events`` come from :func:`prepare_asset_events`. A share event without ``share_id`` is
    its own share (keyed by ``event_id``); a repeated ``share_id`` keeps its first event (by
    ``ts`` then ``event_id``).
    """
    shares = events.filter(_.event_type == "share").mutate(
        share_id=_.share_id.fill_null(_.event_id)
    )
    first = ibis.window(group_by=_.share_id, order_by=[_.ts, _.event_id])  # event_id breaks ties
    return (
        shares.mutate(rank=ibis.row_number().over(first))  # 0 for a share's first event
        .filter(_.rank == 0)
        .select(
            "share_id",
            "asset_id",
            sender_user_id=_.user_id,
            shared_at=_.ts,
            share_quarter=_.quarter,
            recipient_person_id=_.person_id,
            recipient_account_id=_.account_id,
            share_opp_id=_.opp_id,
        )
    )


def buyer_events(events: ir.Table) -> ir.Table:
    """Buyer events with their share: one row per buyer event.

    Parameters
    ----------
    events : ibis.Table
        From :func:`prepare_asset_events`.

    Returns
    -------
    ibis.Table
        ``event_id, asset_id, ts, event_type, person_id, account_id, opp_id, share_id, device,
        duration_s, completion`` plus ``is_linked`` (the share id matches a share event;
        ``share_id`` is null otherwise, ``event_share_id`` keeps the event's own value),
        ``shared_at``, ``sender_user_id``, ``quarter`` (the share's quarter when linked, else
        the event's), ``visit_key`` (the share id; ``"asset:<asset_id>"`` for unlinked
        events) and ``viewer`` (``person_id``, or ``"(anonymous)"``).

    Notes
    -----
    Events made by internal users (``user_id`` not null) are never buyer events.
    """
    shares = share_events(events).select(
        link_share_id="share_id",
        shared_at="shared_at",
        sender_user_id="sender_user_id",
        share_quarter="share_quarter",
    )
    buyer = events.filter(_.is_buyer_event).select(
        "event_id",
        "asset_id",
        "ts",
        "event_type",
        "person_id",
        "account_id",
        "opp_id",
        "share_id",
        "device",
        "duration_s",
        "completion",
        event_quarter=_.quarter,
    )
    joined = buyer.left_join(shares, buyer.share_id == shares.link_share_id)
    return joined.select(
        "event_id",
        "asset_id",
        "ts",
        "event_type",
        "person_id",
        "account_id",
        "opp_id",
        "device",
        "duration_s",
        "completion",
        "shared_at",
        "sender_user_id",
        share_id=ibis.ifelse(_.link_share_id.notnull(), _.share_id, ibis.null("string")),
        event_share_id=_.share_id,  # as on the event, linked or not
        is_linked=_.link_share_id.notnull(),
        quarter=_.share_quarter.fill_null(_.event_quarter),
        visit_key=ibis.ifelse(_.link_share_id.notnull(), _.share_id, "asset:" + _.asset_id),
        viewer=_.person_id.fill_null(ANONYMOUS),
    )


def split_visits(buyer: ir.Table, *, gap_minutes: float = 10.0) -> ir.Table:
    """Number the visits of each viewer: a gap of more than ``gap_minutes`` starts a new one.

    Parameters
    ----------
    buyer : ibis.Table
        Buyer events with ``visit_key``, ``viewer``, ``ts``, ``event_id``
        (:func:`buyer_events`).
    gap_minutes : float, default 10.0
        ``AssetParams.visit_gap_minutes``. Resolution: milliseconds.

    Returns
    -------
    ibis.Table
        ``buyer`` plus ``gap_s`` (seconds since the viewer's previous event on the same key,
        null for the first), ``is_new_visit``, ``visit_number`` (1-based) and ``visit_id``
        (``<visit_key>|<viewer>|<visit_number>``).

    Notes
    -----
    Events are ordered by ``ts`` then ``event_id`` (exports repeat timestamps). A gap equal to
    ``gap_minutes`` stays in the visit; one millisecond more starts a new visit.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.to_datetime(["2026-07-01 09:00:00", "2026-07-01 09:10:00",
    ...                     "2026-07-01 09:20:01"], utc=True)
    >>> frame = pd.DataFrame({"event_id": ["e1", "e2", "e3"], "visit_key": "s1",
    ...                       "viewer": "p1", "ts": t})
    >>> split_visits(ibis.memtable(frame)).order_by("ts").visit_number.to_list()
    [1, 1, 2]
    """
    _check_positive("gap_minutes", gap_minutes)
    gap_ms = int(round(gap_minutes * 60_000))
    by_viewer = ibis.window(group_by=[_.visit_key, _.viewer], order_by=[_.ts, _.event_id])
    previous_ts = _.ts.lag().over(by_viewer)  # null for the viewer's first event on this key
    marked = buyer.mutate(
        # float first: Spark reads a literal like 1000.0 as DECIMAL and would round (PITFALLS)
        gap_s=_.ts.delta(previous_ts, unit="millisecond").cast("float64") / 1000.0,
        is_new_visit=previous_ts.isnull()
        | (_.ts > previous_ts + ibis.interval(milliseconds=gap_ms)),
    )
    # `_` is one row per buyer event with its flag; a running sum of flags numbers the visits
    numbered = marked.mutate(
        visit_number=_.is_new_visit.cast("int64").cumsum(
            group_by=[_.visit_key, _.viewer], order_by=[_.ts, _.event_id]
        )
    )
    return numbered.mutate(
        visit_id=_.visit_key + "|" + _.viewer + "|" + _.visit_number.cast("string")
    )


def summarise_visits(visits: ir.Table) -> ir.Table:
    """One row per visit of :func:`split_visits`.

    Returns
    -------
    ibis.Table
        ``visit_id, visit_key, viewer, share_id, asset_id, quarter, is_linked, started_at,
        ended_at, n_events, n_views, time_viewed_s`` (sum of the known view ``duration_s``,
        seconds; 0 without views, null when no view has a duration), ``completion``
        (largest, null when unknown), ``n_downloads, n_prints, n_forwards, device`` (of the
        visit's first event).
    """
    first = ibis.window(group_by=_.visit_id, order_by=[_.ts, _.event_id])
    with_first = visits.mutate(first_device=_.device.first().over(first))
    is_view = _.event_type == "external_view"
    return (
        with_first.group_by(
            ["visit_id", "visit_key", "viewer", "share_id", "asset_id", "quarter", "is_linked"]
        )
        .aggregate(
            started_at=_.ts.min(),
            ended_at=_.ts.max(),
            n_events=_.count(),
            n_views=is_view.cast("int64").sum(),
            time_viewed_s=ibis.ifelse(is_view, _.duration_s, ibis.null("float64")).sum(),
            completion=ibis.ifelse(is_view, _.completion, ibis.null("float64")).max(),
            n_downloads=(_.event_type == "download").cast("int64").sum(),
            n_prints=(_.event_type == "print").cast("int64").sum(),
            n_forwards=(_.event_type == "forward").cast("int64").sum(),
            device=_.first_device.max(),
        )
        .mutate(
            # no view: nothing viewed (0); views of unknown duration: unknown (null)
            time_viewed_s=ibis.ifelse(_.n_views == 0, 0.0, _.time_viewed_s)
        )
    )


def share_engagement(events: ir.Table, *, gap_minutes: float = 10.0) -> ir.Table:
    """One row per share with what its buyers did.

    Parameters
    ----------
    events : ibis.Table
        From :func:`prepare_asset_events`.
    gap_minutes : float, default 10.0
        Visit gap (:func:`split_visits`).

    Returns
    -------
    ibis.Table
        ``share_id, asset_id, sender_user_id, shared_at, quarter`` (of ``shared_at``),
        ``n_external_views`` (buyer views), ``is_opened`` (at least one buyer view),
        ``n_viewers`` (distinct persons; all anonymous buyers count as one), ``n_visits``,
        ``time_viewed_s`` (sum of the known view durations, seconds; 0 when unopened, null
        when no view has a duration), ``completion`` (largest of the views;
        null when unopened or unknown), ``n_downloads, n_prints, n_forwards`` and
        ``hours_to_first_view`` (null when unopened).
    """
    shares = share_events(events)
    visits = split_visits(buyer_events(events), gap_minutes=gap_minutes).filter(_.is_linked)
    is_view = _.event_type == "external_view"
    per_share = visits.group_by(buyer_share_id=_.share_id).aggregate(
        n_external_views=is_view.cast("int64").sum(),
        n_viewers=ibis.ifelse(is_view, _.viewer, ibis.null("string")).nunique(),
        n_visits=_.visit_id.nunique(),
        time_viewed_s=ibis.ifelse(is_view, _.duration_s, ibis.null("float64")).sum(),
        completion=ibis.ifelse(is_view, _.completion, ibis.null("float64")).max(),
        n_downloads=(_.event_type == "download").cast("int64").sum(),
        n_prints=(_.event_type == "print").cast("int64").sum(),
        n_forwards=(_.event_type == "forward").cast("int64").sum(),
        first_viewed_at=ibis.ifelse(is_view, _.ts, ibis.null(TS_UTC)).min(),
    )
    joined = shares.left_join(per_share, shares.share_id == per_share.buyer_share_id)
    return joined.select(
        "share_id",
        "asset_id",
        "sender_user_id",
        "shared_at",
        quarter=_.share_quarter,
        n_external_views=_.n_external_views.fill_null(0),
        is_opened=_.n_external_views.fill_null(0) > 0,
        n_viewers=_.n_viewers.fill_null(0),
        n_visits=_.n_visits.fill_null(0),
        # unopened: 0 s; opened but no view with a known duration: unknown (null)
        time_viewed_s=ibis.ifelse(_.n_external_views.fill_null(0) > 0, _.time_viewed_s, 0.0),
        completion=_.completion,
        n_downloads=_.n_downloads.fill_null(0),
        n_prints=_.n_prints.fill_null(0),
        n_forwards=_.n_forwards.fill_null(0),
        hours_to_first_view=_.first_viewed_at.delta(_.shared_at, unit="millisecond").cast(
            "float64"
        )
        / 3.6e6,
    )


def buyer_event_counts(buyer: ir.Table) -> ir.Table:
    """Buyer events per ``asset_id, quarter, device, event_type, is_linked``: ``n_events``.

    ``buyer`` comes from :func:`buyer_events` (so ``quarter`` is the share's quarter for
    linked events). Small: a few rows per asset and quarter; the device mix and the counts of
    unlinked events come from it.
    """
    return buyer.group_by(["asset_id", "quarter", "device", "event_type", "is_linked"]).aggregate(
        n_events=_.count()
    )


# --------------------------------------------------------------------------------------------
# Ibis layer: usage, asset status


def rep_asset_usage(events: ir.Table) -> ir.Table:
    """Internal activity per ``asset_id, user_id, quarter`` (event quarter).

    Returns
    -------
    ibis.Table
        ``asset_id, user_id, quarter, n_shares, n_presents, n_internal_views`` (internal views
        include external views made by internal users), one row per combination with at least
        one of them; events without ``user_id`` are left out (a share without a sender still
        counts in :func:`asset_status`).
    """
    internal = events.filter(_.user_id.notnull() & (_.is_usage | _.is_internal_view))
    return internal.group_by(["asset_id", "user_id", "quarter"]).aggregate(
        n_shares=(_.event_type == "share").cast("int64").sum(),
        n_presents=(_.event_type == "present").cast("int64").sum(),
        n_internal_views=_.is_internal_view.cast("int64").sum(),
    )


def asset_status(
    assets: ir.Table,
    events: ir.Table,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
) -> ir.Table:
    """One row per asset and quarter, for every asset created before the quarter's end.

    Parameters
    ----------
    assets : ibis.Table
        From :func:`prepare_assets` (its ``stale_days`` sets ``stale_since``).
    events : ibis.Table
        From :func:`prepare_asset_events`.
    quarters : quarter or quarters
        ``"2026Q3"``, a :class:`Quarter` or several.

    Returns
    -------
    ibis.Table
        The asset's columns, ``quarter, start_at, end_at``, ``days_since_update`` (at the
        quarter's end, in days), ``is_not_updated`` (``stale_by_age_at < end``),
        ``is_expired`` (``expires_at < end``), ``is_stale`` (``stale_since < end``), usage in
        the quarter (``n_shares, n_presents, n_internal_views``; ``n_users_using``: distinct
        internal users who shared or presented it), ``n_shares_opened`` (shares of the
        quarter opened by a buyer, whenever), ``n_shares_while_stale`` (share events in the
        quarter at or after ``stale_since``), ``n_uses_ever`` (shares and presents at any
        time), ``n_events_ever`` (events of any type at any time), ``is_used``,
        ``is_never_shared`` (``n_uses_ever == 0``), ``is_never_used`` (``n_events_ever ==
        0``).
    """
    bounds = quarter_bounds(quarters)
    grid = assets.cross_join(bounds).filter(_.created_at < _.end_at)
    stale_since = assets.select(stale_asset_id="asset_id", asset_stale_since="stale_since")
    uses = events.filter(_.is_usage)
    uses = uses.join(stale_since, uses.asset_id == stale_since.stale_asset_id)
    per_quarter = events.group_by(use_asset_id=_.asset_id, use_quarter=_.quarter).aggregate(
        n_shares=(_.event_type == "share").cast("int64").sum(),
        n_presents=(_.event_type == "present").cast("int64").sum(),
        n_internal_views=_.is_internal_view.cast("int64").sum(),
        n_users_using=ibis.ifelse(_.is_usage, _.user_id, ibis.null("string")).nunique(),
    )
    while_stale = (
        uses.filter((_.event_type == "share") & (_.ts >= _.asset_stale_since))
        .group_by(ws_asset_id=_.asset_id, ws_quarter=_.quarter)
        .aggregate(n_shares_while_stale=_.count())
    )
    ever = events.group_by(ever_asset_id=_.asset_id).aggregate(
        n_uses_ever=_.is_usage.cast("int64").sum(), n_events_ever=_.count()
    )
    views = (
        buyer_events(events)
        .filter(_.is_linked & (_.event_type == "external_view"))
        .select(open_share_id="share_id")
        .distinct()
    )
    shares = share_events(events)
    opened = (
        shares.semi_join(views, shares.share_id == views.open_share_id)
        # `_` is one row per opened share; it counts for the share's asset and quarter
        .group_by(open_asset_id=_.asset_id, open_quarter=_.share_quarter)
        .aggregate(n_shares_opened=_.count())
    )
    out = (
        grid.left_join(
            per_quarter,
            (grid.asset_id == per_quarter.use_asset_id)
            & (grid.quarter == per_quarter.use_quarter),
        )
        .left_join(
            while_stale,
            (_.asset_id == while_stale.ws_asset_id) & (_.quarter == while_stale.ws_quarter),
        )
        .left_join(ever, _.asset_id == ever.ever_asset_id)
        .left_join(
            opened, (_.asset_id == opened.open_asset_id) & (_.quarter == opened.open_quarter)
        )
    )
    counts = (
        "n_shares",
        "n_presents",
        "n_internal_views",
        "n_users_using",
        "n_shares_opened",
        "n_shares_while_stale",
        "n_uses_ever",
        "n_events_ever",
    )
    out = out.mutate(**{c: out[c].fill_null(0).cast("int64") for c in counts})
    return out.select(
        *ASSET_COLUMNS,
        *counts,
        "last_updated_at",
        "stale_by_age_at",
        "stale_since",
        "quarter",
        "start_at",
        "end_at",
        days_since_update=_.end_at.delta(_.last_updated_at, unit="millisecond").cast("float64")
        / 8.64e7,
        is_not_updated=_.stale_by_age_at < _.end_at,
        is_expired=_.expires_at.notnull() & (_.expires_at < _.end_at),
        is_stale=_.stale_since < _.end_at,
    ).mutate(
        is_used=(_.n_shares + _.n_presents) > 0,
        is_never_shared=_.n_uses_ever == 0,
        is_never_used=_.n_events_ever == 0,
    )


# --------------------------------------------------------------------------------------------
# Ibis layer: deals


def closed_deals(
    opportunities: ir.Table,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
    accounts: ir.Table | None = None,
) -> ir.Table:
    """Opportunities closed in the quarters: ``opp_id, account_id, created_at, closed_at,
    quarter, is_won, amount, segment``.

    An opportunity is closed when ``closed_at`` and ``is_won`` are both set; ``quarter`` is the
    quarter of ``closed_at``; ``amount`` null becomes 0; ``segment`` comes from ``accounts``
    (``"(unknown)"`` without it or when null).
    """
    _require(
        opportunities,
        ("opp_id", "account_id", "created_at", "closed_at", "is_won"),
        "opportunities",
    )
    amount = opportunities.amount if "amount" in opportunities.columns else ibis.literal(0.0)
    opps = opportunities.mutate(deal_amount=amount.cast("float64").fill_null(0.0))
    closed = opps.filter(_.closed_at.notnull() & _.is_won.notnull())
    deals = closed.select(
        opp_id=_id(_.opp_id),
        account_id=_id(_.account_id),
        created_at=_utc(closed.created_at),
        closed_at=_utc(closed.closed_at),
        quarter=quarter_label(closed.closed_at),  # from the column as stored: see _utc
        is_won=_.is_won.cast("boolean"),
        amount=_.deal_amount,
    ).filter(_.quarter.isin(_labels(as_quarters(quarters))))
    if accounts is None or "segment" not in accounts.columns:
        return deals.mutate(segment=ibis.literal(UNKNOWN))
    segments = accounts.select(segment_account_id=_id(_.account_id), account_segment=_.segment)
    joined = deals.left_join(segments, deals.account_id == segments.segment_account_id)
    return joined.select(
        *[c for c in deals.columns],
        segment=_.account_segment.cast("string").fill_null(UNKNOWN),
    )


def deal_asset_links(
    events: ir.Table,
    deals: ir.Table,
    *,
    opportunity_people: ir.Table | None = None,
    lookback_days: int | None = None,
) -> ir.Table:
    """Which assets each deal's buying group viewed, or was sent, before the deal closed.

    Parameters
    ----------
    events : ibis.Table
        From :func:`prepare_asset_events` (with ``people`` so that ``account_id`` is filled).
    deals : ibis.Table
        From :func:`closed_deals`.
    opportunity_people : ibis.Table, optional
        The buying group of each opportunity; deals it does not list fall back to their
        account's events.
    lookback_days : int, optional
        Only events at or after ``created_at - lookback_days`` count; None: any time before
        the close.

    Returns
    -------
    ibis.Table
        ``opp_id, asset_id, is_viewed`` (a buyer external view belongs to the deal),
        ``is_shared`` (a share or present event does), ``first_viewed_at``; one row per pair
        with at least one such event strictly before ``closed_at``.
    """
    relevant = events.filter(
        (_.is_buyer_event & (_.event_type == "external_view")) | _.is_usage
    ).select(
        "asset_id",
        "ts",
        "person_id",
        "account_id",
        "opp_id",
        is_view=_.event_type == "external_view",
    )
    keys = deals.select(
        link_opp_id="opp_id",
        link_account_id="account_id",
        link_created_at="created_at",
        link_closed_at="closed_at",
    )
    parts = [relevant.join(keys, relevant.opp_id == keys.link_opp_id)]
    account_keys = keys
    if opportunity_people is not None:
        members = opportunity_people.select(
            member_opp_id=_id(_.opp_id), member_person_id=_id(_.person_id)
        ).distinct()
        member_keys = keys.join(members, keys.link_opp_id == members.member_opp_id)
        parts.append(
            relevant.join(member_keys, relevant.person_id == member_keys.member_person_id).select(
                parts[0].columns
            )
        )
        account_keys = keys.anti_join(members, keys.link_opp_id == members.member_opp_id)
    parts.append(relevant.join(account_keys, relevant.account_id == account_keys.link_account_id))
    linked = ibis.union(*[p.select(parts[0].columns) for p in parts], distinct=False)
    before_close = _.ts < _.link_closed_at
    if lookback_days is not None:
        _check_positive("lookback_days", lookback_days)
        window_start = _.link_created_at - ibis.interval(days=int(lookback_days))
        linked = linked.filter(before_close & (_.ts >= window_start))
    else:
        linked = linked.filter(before_close)
    return linked.group_by(opp_id=_.link_opp_id, asset_id=_.asset_id).aggregate(
        is_viewed=_.is_view.any(),
        is_shared=(~_.is_view).any(),
        first_viewed_at=ibis.ifelse(_.is_view, _.ts, ibis.null(TS_UTC)).min(),
    )


# --------------------------------------------------------------------------------------------
# statistics on small frames


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive; got {value!r}")


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha!r}")
    return float(alpha)


def wilson_interval(
    successes: Any, n: Any, *, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions (vectorised).

    Parameters
    ----------
    successes, n : array-like of int
        Successes and trials; ``n = 0`` gives NaN bounds.
    alpha : float, default 0.05
        Two-sided level: the interval covers with probability ``1 - alpha``.

    Returns
    -------
    low, high : numpy.ndarray
        Bounds in [0, 1].

    Notes
    -----
    Checked against ``statsmodels.stats.proportion.proportion_confint(method="wilson")``.

    References
    ----------
    .. [1] Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
       inference. JASA 22, 209-212.

    Examples
    --------
    >>> low, high = wilson_interval(8, 10)
    >>> round(float(low), 4), round(float(high), 4)
    (0.4902, 0.9433)
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = stats.norm.ppf(1 - _check_alpha(alpha) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        low = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return low, high


def newcombe_interval(
    successes1: Any, n1: Any, successes2: Any, n2: Any, *, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for ``p1 - p2`` (method 10), vectorised.

    Parameters
    ----------
    successes1, n1, successes2, n2 : array-like of int
        Counts of the two independent groups; an empty group gives NaN bounds.
    alpha : float, default 0.05

    Returns
    -------
    low, high : numpy.ndarray
        Bounds of the difference in proportions, in [-1, 1].

    Notes
    -----
    Combines the two Wilson intervals (:func:`wilson_interval`). Checked against
    ``statsmodels.stats.proportion.confint_proportions_2indep(method="newcomb")``.

    References
    ----------
    .. [1] Newcombe, R. G. (1998). Interval estimation for the difference between independent
       proportions: comparison of eleven methods. Statistics in Medicine 17, 873-890.
    """
    k1, m1 = np.asarray(successes1, dtype=float), np.asarray(n1, dtype=float)
    k2, m2 = np.asarray(successes2, dtype=float), np.asarray(n2, dtype=float)
    l1, u1 = wilson_interval(k1, m1, alpha=alpha)
    l2, u2 = wilson_interval(k2, m2, alpha=alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = k1 / m1, k2 / m2
        diff = p1 - p2
        low = diff - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        high = diff + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


MH_COLUMNS: tuple[str, ...] = ("n_strata", "diff_mh", "diff_se", "diff_low", "diff_high")
"""Columns of :func:`mantel_haenszel_risk_difference_by`, after the group keys."""


def mantel_haenszel_risk_difference_by(
    strata: pd.DataFrame,
    keys: Sequence[str],
    *,
    successes1: str,
    n1: str,
    successes2: str,
    n2: str,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Mantel-Haenszel risk difference over strata, its Sato variance and a Wald interval,
    for each group of ``keys`` (vectorised).

    Parameters
    ----------
    strata : pandas.DataFrame
        One row per group and stratum with the counts of a 2x2 table.
    keys : sequence of str
        Columns naming a group (e.g. ``["asset_id", "quarter"]``); the other rows of a group
        are its strata.
    successes1, n1, successes2, n2 : str
        Columns of successes and trials in group 1 (e.g. won deals where the asset was
        shared) and group 2 (comparable deals) of each stratum.
    alpha : float, default 0.05
        The interval covers with probability ``1 - alpha`` (normal approximation).

    Returns
    -------
    pandas.DataFrame
        ``*keys`` and :data:`MH_COLUMNS`: ``n_strata`` (strata with both groups present; the
        others have weight 0), ``diff_mh`` = sum_k (a_k n2_k - c_k n1_k) / N_k divided by
        sum_k n1_k n2_k / N_k (a fraction: 0.15 is +15 points), ``diff_se`` (square root of
        Sato's variance), ``diff_low, diff_high`` (``diff_mh -/+ z * diff_se``; not clipped).
        NaN when no stratum has both groups.

    Notes
    -----
    Each stratum is weighted by ``n1 n2 / (n1 + n2)``, so the estimate compares like with
    like within strata and pools the differences; it assumes one common difference across
    strata (when they differ it is a weighted average of them). The variance is Sato's
    (1989), consistent both with few large strata and with many small ones [2]_; with one
    stratum it equals the unpooled variance ``p1 (1 - p1) / n1 + p2 (1 - p2) / n2``, so the
    interval is then the usual Wald interval, too narrow when a group has few trials or a
    rate of 0 or 1 (a segment with 0 of 3 shared deals won adds no variance from that group).
    Checked against Agresti's (2013, p. 231)
    eight-centre example (estimate 0.130, standard error 0.050) and R ``cardx``'s interval
    for it, and against statsmodels' Wald interval for one stratum (``tests/test_assets.py``).

    References
    ----------
    .. [1] Greenland, S. and Robins, J. M. (1985). Estimation of a common effect parameter
       from sparse follow-up data. Biometrics 41, 55-68.
    .. [2] Sato, T. (1989). On the variance estimator for the Mantel-Haenszel risk
       difference. Biometrics 45, 1323-1324.
    .. [3] Agresti, A. (2013). Categorical Data Analysis, 3rd ed., Wiley, section 6.3.

    Examples
    --------
    >>> t = pd.DataFrame({"g": ["x", "x"], "a": [3, 6], "n1": [10, 10], "c": [1, 4],
    ...                   "n2": [10, 10]})
    >>> out = mantel_haenszel_risk_difference_by(
    ...     t, ["g"], successes1="a", n1="n1", successes2="c", n2="n2")
    >>> round(float(out.diff_mh[0]), 3), int(out.n_strata[0])
    (0.2, 2)
    """
    keys = list(keys)
    z = stats.norm.ppf(1 - _check_alpha(alpha) / 2)
    a = pd.to_numeric(strata[successes1]).to_numpy(dtype=float)
    m1 = pd.to_numeric(strata[n1]).to_numpy(dtype=float)
    c = pd.to_numeric(strata[successes2]).to_numpy(dtype=float)
    m2 = pd.to_numeric(strata[n2]).to_numpy(dtype=float)
    total = m1 + m2
    with np.errstate(divide="ignore", invalid="ignore"):
        both = (m1 > 0) & (m2 > 0)
        # a stratum with an empty group has weight 0 and adds nothing to any sum below
        safe = np.where(both, total, 1.0)
        terms = pd.DataFrame(
            {
                "weight": np.where(both, m1 * m2 / safe, 0.0),
                "numerator": np.where(both, (a * m2 - c * m1) / safe, 0.0),
                # Sato (1989): P_k and Q_k
                "sato_p": np.where(
                    both, (m1**2 * c - m2**2 * a + m1 * m2 * (m2 - m1) / 2) / safe**2, 0.0
                ),
                "sato_q": np.where(both, (a * (m2 - c) + c * (m1 - a)) / (2 * safe), 0.0),
                "n_strata": both.astype("int64"),
            },
            index=strata.index,
        )
    for key in keys:
        terms[key] = strata[key].to_numpy()
    sums = terms.groupby(keys, dropna=False, sort=False).sum().reset_index()
    weight = sums["weight"].where(sums["weight"] > 0)
    diff = sums["numerator"] / weight
    variance = (diff * sums["sato_p"] + sums["sato_q"]) / weight**2
    se = np.sqrt(variance.clip(lower=0.0))
    out = sums.loc[:, [*keys, "n_strata"]].copy()
    out["diff_mh"] = diff
    out["diff_se"] = se
    out["diff_low"] = diff - z * se
    out["diff_high"] = diff + z * se
    return out.loc[:, [*keys, *MH_COLUMNS]]


def _safe_ratio(num: Any, den: Any) -> Any:
    """``num / den`` with NaN where ``den`` is 0."""
    num = pd.to_numeric(num).astype(float)
    den = pd.to_numeric(den).astype(float)
    return num / den.where(den != 0)


def compare_quarters(
    frame: pd.DataFrame, *, metrics: Sequence[str], keys: Sequence[str] = ()
) -> pd.DataFrame:
    """Quarter-over-quarter change of each metric, long format.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per ``keys`` and ``quarter`` (``YYYYQn``).
    metrics : sequence of str
        Numeric columns to compare.
    keys : sequence of str
        Columns identifying a row besides ``quarter`` (e.g. ``["asset_id"]``).

    Returns
    -------
    pandas.DataFrame
        ``*keys, metric, quarter, value, previous_quarter, previous_value, change`` where
        ``previous_quarter`` is the calendar quarter before (not the previous row) and
        ``change = value - previous_value`` (NaN when that quarter is not in ``frame``).
        Fractions change in fraction points (0.05 is +5 points).

    Examples
    --------
    >>> f = pd.DataFrame({"quarter": ["2026Q2", "2026Q3"], "n_shares": [10, 14]})
    >>> compare_quarters(f, metrics=["n_shares"]).change.tolist()
    [nan, 4.0]
    """
    keys = list(keys)
    missing = [c for c in [*keys, "quarter", *metrics] if c not in frame.columns]
    if missing:
        raise ValueError(f"compare_quarters: frame lacks the columns {', '.join(missing)}")
    columns = [*keys, "metric", "quarter", "value", "previous_quarter", "previous_value", "change"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    long = frame.melt(id_vars=[*keys, "quarter"], value_vars=list(metrics), var_name="metric")
    long["value"] = pd.to_numeric(long["value"]).astype(float)
    long["previous_quarter"] = long["quarter"].map(lambda q: str(Quarter.parse(q).previous()))
    before = long.loc[:, [*keys, "metric", "quarter", "value"]].rename(
        columns={"quarter": "previous_quarter", "value": "previous_value"}
    )
    out = long.merge(before, on=[*keys, "metric", "previous_quarter"], how="left")
    out["change"] = out["value"] - out["previous_value"]
    return out.loc[:, columns].sort_values([*keys, "metric", "quarter"], ignore_index=True)


def add_change_columns(
    frame: pd.DataFrame, *, metrics: Sequence[str], keys: Sequence[str]
) -> pd.DataFrame:
    """Add ``<metric>_change`` (value minus the calendar quarter before, per ``keys``) to a
    frame with one row per ``keys`` and ``quarter``; NaN where that quarter is absent.

    Examples
    --------
    >>> f = pd.DataFrame({"quarter": ["2026Q2", "2026Q3"], "k": ["a", "a"], "n": [3, 5]})
    >>> add_change_columns(f, metrics=["n"], keys=["k"])["n_change"].tolist()
    [nan, 2.0]
    """
    if frame.empty:
        return frame.assign(**{f"{m}_change": pd.Series(dtype=float) for m in metrics})
    keys = list(keys)
    before = frame.loc[:, [*keys, "quarter", *metrics]].copy()
    before["quarter"] = before["quarter"].map(lambda q: str(Quarter.parse(q).next()))
    before = before.rename(columns={m: f"{m}__previous" for m in metrics})
    out = frame.merge(before, on=[*keys, "quarter"], how="left")
    for metric in metrics:
        previous = pd.to_numeric(out.pop(f"{metric}__previous")).astype(float)
        out[f"{metric}_change"] = pd.to_numeric(out[metric]).astype(float) - previous
    return out


# --------------------------------------------------------------------------------------------
# missing tables, execution helpers

_EMPTY_EVENTS_SCHEMA = {
    "event_id": "string",
    "asset_id": "string",
    "ts": TS_UTC,
    "event_type": "string",
}
_EMPTY_ASSETS_SCHEMA = {
    "asset_id": "string",
    "title": "string",
    "type": "string",
    "created_at": TS_UTC,
}


def _empty_table(schema: dict[str, str]) -> ir.Table:
    frame = pd.DataFrame({name: pd.Series([], dtype=object) for name in schema})
    for name, dtype in schema.items():
        if dtype == TS_UTC:
            frame[name] = pd.Series([], dtype="datetime64[us, UTC]")
    return ibis.memtable(frame, schema=schema)


def _n_rows(table: ir.Table) -> int:
    return int(table.count().to_pandas())


def _inputs(
    assets: ir.Table | None, events: ir.Table | None
) -> tuple[ir.Table, ir.Table, str | None]:
    """Both tables (an absent one replaced by an empty typed table) and why results are empty.

    The message says what is missing: no asset events (table absent or empty), else no
    ``assets`` table. The empty stand-ins let every verb run its usual expressions and return
    frames with the usual columns and no rows.
    """
    message = None
    if assets is None:
        message, assets = NO_ASSETS, _empty_table(_EMPTY_ASSETS_SCHEMA)
    if events is None or _n_rows(events) == 0:
        message, events = NO_EVENTS, _empty_table(_EMPTY_EVENTS_SCHEMA)
    if message is not None:
        log.info("asset study: %s", message)
        assets = assets.limit(0)
        events = events.limit(0)
    return assets, events, message


def _to_pandas(expr: ir.Table) -> pd.DataFrame:
    """Execute a small aggregate once, on the backend the tables are bound to."""
    return expr.to_pandas()


def _quarter_filter(frame: pd.DataFrame, quarter: QuarterLike | None) -> pd.DataFrame:
    if quarter is None:
        return frame
    return frame.loc[frame["quarter"] == str(as_quarters(quarter)[0])].reset_index(drop=True)


_ASSET_INFO = ("asset_id", "title", "type", "funnel_stage", "persona", "owner_team")


def _asset_info(assets: ir.Table) -> pd.DataFrame:
    return _to_pandas(assets.select(*_ASSET_INFO))


def _with_asset_info(frame: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Add the asset's title and dimensions; an asset missing from ``assets`` is unknown."""
    out = frame.merge(info, on="asset_id", how="left")
    for column in _ASSET_INFO[1:]:
        out[column] = out[column].fillna(UNKNOWN if column != "title" else "")
    return out


def _check_columns(columns: Sequence[str], allowed: Sequence[str]) -> list[str]:
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise ValueError(f"cannot group by {unknown}; allowed: {', '.join(allowed)}")
    return list(columns)


# --------------------------------------------------------------------------------------------
# sales usage


def _user_quarters(
    users: pd.DataFrame | None, usage: pd.DataFrame, quarters: Sequence[str]
) -> pd.DataFrame:
    """``quarter, user_id, team, is_rep``: who could have used assets in each quarter.

    With ``users``: every user in every quarter, plus users seen in the events but missing
    from ``users`` (team ``"(unknown)"``, counted as reps). Without: the users seen in each
    quarter's events, all reps.
    """
    seen = usage.loc[:, ["quarter", "user_id"]].drop_duplicates()
    if users is None:
        out = seen.assign(team=UNKNOWN, is_rep=True)
    else:
        known = users.loc[:, ["user_id", "team"]].drop_duplicates("user_id")
        grid = known.merge(pd.DataFrame({"quarter": list(quarters)}), how="cross")
        extra = seen.loc[~seen["user_id"].isin(known["user_id"])].assign(team=UNKNOWN)
        out = pd.concat([grid, extra], ignore_index=True)
        out["team"] = out["team"].fillna(UNKNOWN).astype(str)
        out["is_rep"] = out["team"].isin([*REP_TEAMS, UNKNOWN])
    return out.loc[:, ["quarter", "user_id", "team", "is_rep"]].reset_index(drop=True)


USAGE_METRICS: tuple[str, ...] = (
    "n_assets",
    "n_assets_used",
    "share_assets_used",
    "n_shares",
    "n_presents",
    "n_internal_views",
    "n_reps_using",
)


@dataclass(frozen=True, slots=True)
class AssetUsageResult:
    """How sales uses the assets, per asset, asset group, rep, team and quarter.

    Use = a share or present event (see the module docstring); all counts are per quarter.
    """

    status: pd.DataFrame  # one row per asset and quarter (asset_status), zeros included
    usage: pd.DataFrame  # asset_id, user_id, quarter, n_shares, n_presents, n_internal_views
    users: pd.DataFrame  # quarter, user_id, team, is_rep: the denominators
    quarters: tuple[str, ...]  # the quarters measured, oldest first
    message: str | None = None  # why the result is empty (no events / no assets), else None

    def _reps_per_quarter(self) -> pd.Series:
        reps = self.users.loc[self.users["is_rep"]]
        counts = reps.groupby("quarter")["user_id"].nunique()
        return counts.reindex(list(self.quarters), fill_value=0)

    def _usage_with_info(self) -> pd.DataFrame:
        info = self.status.loc[:, list(_ASSET_INFO)].drop_duplicates("asset_id")
        out = _with_asset_info(self.usage, info)
        out = out.merge(self.users, on=["quarter", "user_id"], how="left")
        out["team"] = out["team"].fillna(UNKNOWN)
        out["is_rep"] = out["is_rep"].fillna(True).astype(bool)
        out["is_use"] = (out["n_shares"] + out["n_presents"]) > 0
        return out

    def by(self, *columns: str) -> pd.DataFrame:
        """Usage per quarter and asset group.

        Parameters
        ----------
        *columns : str
            Any of ``asset_id`` and :data:`DIMENSIONS` (``type``, ``funnel_stage``, ...);
            none: one row per quarter.

        Returns
        -------
        pandas.DataFrame
            ``quarter, *columns, n_assets`` (existing by the quarter's end), ``n_assets_used,
            share_assets_used`` (fraction), ``n_shares, n_presents, n_internal_views,
            n_reps_using`` (distinct reps who used at least one of the group's assets),
            ``share_of_reps`` (of the quarter's reps).
        """
        group = ["quarter", *_check_columns(columns, ("asset_id", *DIMENSIONS))]
        status = self.status
        per_group = status.groupby(group, dropna=False).agg(
            n_assets=("asset_id", "nunique"),
            n_assets_used=("is_used", "sum"),
            n_shares=("n_shares", "sum"),
            n_presents=("n_presents", "sum"),
            n_internal_views=("n_internal_views", "sum"),
        )
        used = self._usage_with_info()
        used = used.loc[used["is_use"] & used["is_rep"]]
        reps = used.groupby(group, dropna=False)["user_id"].nunique().rename("n_reps_using")
        out = per_group.join(reps, how="left").reset_index()
        out["n_reps_using"] = out["n_reps_using"].fillna(0).astype("int64")
        out["n_assets_used"] = out["n_assets_used"].astype("int64")
        out["share_assets_used"] = _safe_ratio(out["n_assets_used"], out["n_assets"])
        n_reps = out["quarter"].map(self._reps_per_quarter())
        out["share_of_reps"] = _safe_ratio(out["n_reps_using"], n_reps)
        return out.sort_values(group, ignore_index=True)

    def by_asset(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """One row per asset and quarter, ranked by shares, presents, reps (the usage table).

        Columns: ``quarter, rank, asset_id, title, type, funnel_stage, persona, owner_team,
        n_reps_using, share_of_reps, n_shares, n_shares_change`` (against the quarter before;
        NaN when it was not measured), ``n_presents, n_internal_views, is_used``.
        """
        per_asset = self.by("asset_id").drop(
            columns=["n_assets", "n_assets_used", "share_assets_used"]
        )
        per_asset = add_change_columns(per_asset, metrics=["n_shares"], keys=["asset_id"])
        info = self.status.loc[:, list(_ASSET_INFO)].drop_duplicates("asset_id")
        out = per_asset.merge(info, on="asset_id", how="left")
        out["is_used"] = (out["n_shares"] + out["n_presents"]) > 0
        out = out.sort_values(
            ["quarter", "n_shares", "n_presents", "n_reps_using", "n_internal_views", "asset_id"],
            ascending=[True, False, False, False, False, True],
            ignore_index=True,
        )
        out["rank"] = out.groupby("quarter").cumcount() + 1
        columns = [
            "quarter",
            "rank",
            *_ASSET_INFO,
            "n_reps_using",
            "share_of_reps",
            "n_shares",
            "n_shares_change",
            "n_presents",
            "n_internal_views",
            "is_used",
        ]
        return _quarter_filter(out.loc[:, columns], quarter)

    def by_rep(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """One row per user and quarter (users with no use included, as zeros).

        Columns: ``quarter, user_id, team, is_rep, n_assets_used`` (distinct assets shared or
        presented), ``n_shares, n_presents, n_internal_views``.
        """
        usage = self._usage_with_info()
        per_user = usage.groupby(["quarter", "user_id"]).agg(
            n_shares=("n_shares", "sum"),
            n_presents=("n_presents", "sum"),
            n_internal_views=("n_internal_views", "sum"),
        )
        assets_used = (
            usage.loc[usage["is_use"]].groupby(["quarter", "user_id"])["asset_id"].nunique()
        )
        per_user = per_user.join(assets_used.rename("n_assets_used"), how="left")
        out = self.users.merge(per_user.reset_index(), on=["quarter", "user_id"], how="left")
        for column in ("n_assets_used", "n_shares", "n_presents", "n_internal_views"):
            out[column] = out[column].fillna(0).astype("int64")
        columns = [
            "quarter",
            "user_id",
            "team",
            "is_rep",
            "n_assets_used",
            "n_shares",
            "n_presents",
            "n_internal_views",
        ]
        out = out.loc[:, columns].sort_values(["quarter", "team", "user_id"], ignore_index=True)
        return _quarter_filter(out, quarter)

    def by_team(self) -> pd.DataFrame:
        """One row per team and quarter: ``n_users, n_users_using, share_using,
        assets_used_per_user`` (mean over the team's users, zeros included), ``n_shares,
        n_presents, n_internal_views``."""
        reps = self.by_rep().assign(is_using=lambda f: f["n_assets_used"] > 0)
        out = (
            reps.groupby(["quarter", "team"])
            .agg(
                n_users=("user_id", "nunique"),
                n_users_using=("is_using", "sum"),
                assets_used_per_user=("n_assets_used", "mean"),
                n_shares=("n_shares", "sum"),
                n_presents=("n_presents", "sum"),
                n_internal_views=("n_internal_views", "sum"),
            )
            .reset_index()
        )
        out["n_users_using"] = out["n_users_using"].astype("int64")
        out.insert(4, "share_using", _safe_ratio(out["n_users_using"], out["n_users"]))
        return out

    def by_quarter(self) -> pd.DataFrame:
        """One row per quarter: :meth:`by` totals plus ``n_reps, share_reps_using`` (reps who
        used at least one asset) and ``assets_used_per_rep`` (mean over reps, zeros included)."""
        totals = self.by()
        reps = self.by_rep()
        reps = reps.loc[reps["is_rep"]]
        per_rep = reps.groupby("quarter")["n_assets_used"].mean()
        totals["n_reps"] = totals["quarter"].map(self._reps_per_quarter()).astype("int64")
        totals["share_reps_using"] = _safe_ratio(totals["n_reps_using"], totals["n_reps"])
        totals["assets_used_per_rep"] = totals["quarter"].map(per_rep).astype(float)
        return totals.drop(columns=["share_of_reps"])

    def summary(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """The ranked usage table (:meth:`by_asset`)."""
        return self.by_asset(quarter)

    def change(self, by: str | None = None) -> pd.DataFrame:
        """Quarter-over-quarter change (:func:`compare_quarters`) of the quarter totals, or of
        each group of ``by`` (``asset_id``, ``type``, ...)."""
        if by is None:
            metrics = [*USAGE_METRICS, "n_reps", "share_reps_using", "assets_used_per_rep"]
            return compare_quarters(self.by_quarter(), metrics=metrics)
        return compare_quarters(self.by(by), metrics=[*USAGE_METRICS, "share_of_reps"], keys=[by])


def measure_asset_usage(
    assets: ir.Table | None,
    events: ir.Table | None,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
    users: ir.Table | None = None,
    stale_days: int = 365,
) -> AssetUsageResult:
    """Measure how sales uses the assets: reps, shares, presents, internal views.

    Parameters
    ----------
    assets, events : ibis.Table or None
        The contract tables ``assets`` and ``asset_events``; None when absent from the export
        (the result is then empty and says why in ``message``).
    quarters : quarter or quarters
        E.g. ``["2026Q2", "2026Q3"]``; compare consecutive quarters with ``change()``.
    users : ibis.Table, optional
        ``users`` (``user_id, team``): who is a rep (teams ``sales``, ``sdr``).
    stale_days : int, default 365
        Passed to :func:`prepare_assets` (only the status columns depend on it).

    Returns
    -------
    AssetUsageResult

    Notes
    -----
    Rep-level counts need a ``user_id`` on the event; shares without one still count in the
    asset totals. Users are all counted in every quarter (``users`` has no start or end date).

    Examples
    --------
    >>> result = measure_asset_usage(None, None, quarters="2026Q3")
    >>> result.message, len(result.summary())
    ('No asset events in this export.', 0)
    """
    chosen = as_quarters(quarters)
    labels = _labels(chosen)
    assets, events, message = _inputs(assets, events)
    prepared = prepare_asset_events(events)
    status = _to_pandas(
        asset_status(prepare_assets(assets, stale_days=stale_days), prepared, quarters=chosen)
    )
    usage = _to_pandas(rep_asset_usage(prepared).filter(_.quarter.isin(labels)))
    users_frame = None
    if users is not None and message is None:
        _require(users, ("user_id", "team"), "users")
        users_frame = _to_pandas(
            users.select(user_id=_id(_.user_id), team=strip_text(_.team.cast("string")).lower())
        )
    return AssetUsageResult(
        status=status,
        usage=usage,
        users=_user_quarters(users_frame, usage, labels),
        quarters=tuple(labels),
        message=message,
    )


# --------------------------------------------------------------------------------------------
# buyer engagement

ENGAGEMENT_METRICS: tuple[str, ...] = (
    "n_shares",
    "n_shares_opened",
    "buyer_view_rate",
    "n_external_views",
    "views_per_share",
    "n_visits",
    "time_viewed_s",
    "median_time_viewed_s",
    "mean_completion",
    "n_downloads",
    "n_prints",
    "n_forwards",
)


def _engagement_of(shares: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """Engagement metrics of ``shares`` (one row per share) per ``group``."""
    opened = shares.loc[shares["is_opened"]]
    out = shares.groupby(group, dropna=False).agg(
        n_shares=("share_id", "count"),
        n_shares_opened=("is_opened", "sum"),
        n_external_views=("n_external_views", "sum"),
        n_visits=("n_visits", "sum"),
        time_viewed_s=("time_viewed_s", "sum"),
        n_downloads=("n_downloads", "sum"),
        n_prints=("n_prints", "sum"),
        n_forwards=("n_forwards", "sum"),
    )
    of_opened = opened.groupby(group, dropna=False).agg(
        median_time_viewed_s=("time_viewed_s", "median"),
        mean_completion=("completion", "mean"),
        median_hours_to_first_view=("hours_to_first_view", "median"),
    )
    out = out.join(of_opened, how="left").reset_index()
    for column in (
        "n_shares",
        "n_shares_opened",
        "n_external_views",
        "n_visits",
        "n_downloads",
        "n_prints",
        "n_forwards",
    ):
        out[column] = out[column].astype("int64")
    out["buyer_view_rate"] = _safe_ratio(out["n_shares_opened"], out["n_shares"])
    out["views_per_share"] = _safe_ratio(out["n_external_views"], out["n_shares"])
    columns = [
        *group,
        "n_shares",
        "n_shares_opened",
        "buyer_view_rate",
        "n_external_views",
        "views_per_share",
        "n_visits",
        "time_viewed_s",
        "median_time_viewed_s",
        "mean_completion",
        "median_hours_to_first_view",
        "n_downloads",
        "n_prints",
        "n_forwards",
    ]
    return out.loc[:, columns]


@dataclass(frozen=True, slots=True)
class BuyerEngagementResult:
    """What buyers did with the shares sent in each quarter (share cohorts).

    Rates are fractions; times in seconds (``*_s``) or hours (``*_hours*``).
    """

    shares: pd.DataFrame  # one row per share (share_engagement) with asset info and team
    visits: pd.DataFrame  # one row per visit (summarise_visits), linked and unlinked
    event_counts: pd.DataFrame  # buyer_event_counts: asset, quarter, device, type, is_linked
    quarters: tuple[str, ...]
    gap_minutes: float  # visit gap used by split_visits
    message: str | None = None  # why the result is empty, else None

    def by(self, *columns: str) -> pd.DataFrame:
        """Engagement per quarter and group.

        Parameters
        ----------
        *columns : str
            Any of ``asset_id``, :data:`DIMENSIONS`, ``sender_user_id``, ``team``; none: one
            row per quarter.

        Returns
        -------
        pandas.DataFrame
            ``quarter, *columns, n_shares, n_shares_opened, buyer_view_rate`` (fraction),
            ``n_external_views, views_per_share, n_visits, time_viewed_s`` (total, seconds),
            ``median_time_viewed_s, mean_completion, median_hours_to_first_view`` (over opened
            shares), ``n_downloads, n_prints, n_forwards``.
        """
        allowed = ("asset_id", *DIMENSIONS, "sender_user_id", "team")
        group = ["quarter", *_check_columns(columns, allowed)]
        return _engagement_of(self.shares, group).sort_values(group, ignore_index=True)

    def by_asset(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """One row per asset and quarter with the asset's title and groups, most shared
        first; :meth:`by` columns plus ``buyer_view_rate_change`` (fraction points against
        the quarter before)."""
        out = add_change_columns(
            self.by("asset_id"), metrics=["buyer_view_rate"], keys=["asset_id"]
        )
        info = self.shares.loc[:, list(_ASSET_INFO)].drop_duplicates("asset_id")
        out = out.merge(info, on="asset_id", how="left")
        out = out.sort_values(
            ["quarter", "n_shares", "n_shares_opened", "asset_id"],
            ascending=[True, False, False, True],
            ignore_index=True,
        )
        first = ["quarter", *_ASSET_INFO]
        out = out.loc[:, [*first, *[c for c in out.columns if c not in first]]]
        return _quarter_filter(out, quarter)

    def by_quarter(self) -> pd.DataFrame:
        """One row per quarter: :meth:`by` totals plus ``n_buyer_events`` (all buyer events)
        and ``n_unlinked_events`` (buyer events with no matching share)."""
        totals = self.by()
        counts = self.event_counts
        all_events = counts.groupby("quarter")["n_events"].sum()
        unlinked = (
            counts.loc[~counts["is_linked"].astype(bool)].groupby("quarter")["n_events"].sum()
        )
        totals["n_buyer_events"] = totals["quarter"].map(all_events).fillna(0).astype("int64")
        totals["n_unlinked_events"] = totals["quarter"].map(unlinked).fillna(0).astype("int64")
        frame = pd.DataFrame({"quarter": list(self.quarters)})
        out = frame.merge(totals, on="quarter", how="left")
        counts_cols = [c for c in out.columns if c.startswith("n_")]
        out[counts_cols] = out[counts_cols].fillna(0).astype("int64")
        return out

    def device_mix(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Buyer views per device: ``quarter, device, n_views, share`` (of the quarter's
        views; linked and unlinked views)."""
        views = self.event_counts.loc[self.event_counts["event_type"] == "external_view"]
        out = views.groupby(["quarter", "device"])["n_events"].sum().rename("n_views")
        out = out.reset_index()
        out["n_views"] = out["n_views"].astype("int64")
        out["share"] = _safe_ratio(
            out["n_views"], out.groupby("quarter")["n_views"].transform("sum")
        )
        return _quarter_filter(out.sort_values(["quarter", "device"], ignore_index=True), quarter)

    def device_mix_change(self) -> pd.DataFrame:
        """Quarter-over-quarter change (:func:`compare_quarters`) of the device mix, per device.

        Returns
        -------
        pandas.DataFrame
            ``device, metric, quarter, value, previous_quarter, previous_value, change`` for
            the metrics ``n_views`` (buyer views, count) and ``share`` (fraction of the
            quarter's buyer views; its change is in fraction points, 0.05 is +5 points).

        Notes
        -----
        Every device seen in any measured quarter is listed in every measured quarter: a
        device with no view in a quarter has ``n_views`` 0 and ``share`` 0 there, so a device
        that appears or disappears shows its whole change instead of NaN. A quarter with no
        buyer view at all has ``share`` NaN (no mix to compare). The previous quarter is the
        calendar quarter before; its values are NaN when it was not measured.
        """
        mix = self.device_mix()
        grid = pd.MultiIndex.from_product(
            [list(self.quarters), sorted(set(mix["device"]))], names=["quarter", "device"]
        )
        out = mix.set_index(["quarter", "device"]).reindex(grid).reset_index()
        out["n_views"] = out["n_views"].fillna(0).astype("int64")
        totals = out.groupby("quarter")["n_views"].transform("sum")
        out["share"] = _safe_ratio(out["n_views"], totals)
        return compare_quarters(out, metrics=["n_views", "share"], keys=["device"])

    def opened_shares(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """The opened shares (one row each) with ``minutes_viewed``: the distributions the
        engagement figure draws."""
        out = self.shares.loc[self.shares["is_opened"]].copy()
        out["minutes_viewed"] = out["time_viewed_s"] / 60.0
        return _quarter_filter(out.reset_index(drop=True), quarter)

    def summary(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Engagement per asset (:meth:`by_asset`)."""
        return self.by_asset(quarter)

    def change(self, by: str | None = None) -> pd.DataFrame:
        """Quarter-over-quarter change of the quarter totals, or per group of ``by``."""
        if by is None:
            return compare_quarters(self.by_quarter(), metrics=ENGAGEMENT_METRICS)
        return compare_quarters(self.by(by), metrics=ENGAGEMENT_METRICS, keys=[by])


def measure_buyer_engagement(
    assets: ir.Table | None,
    events: ir.Table | None,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
    gap_minutes: float = 10.0,
    users: ir.Table | None = None,
) -> BuyerEngagementResult:
    """Measure what buyers did with the assets sales sent them.

    Parameters
    ----------
    assets, events : ibis.Table or None
        ``assets`` and ``asset_events``; None when absent (empty result with ``message``).
    quarters : quarter or quarters
        Share cohorts to measure (shares sent in these quarters, with all their buyer events).
    gap_minutes : float, default 10.0
        ``AssetParams.visit_gap_minutes``: a gap of more than this starts a new visit.
    users : ibis.Table, optional
        Adds the sender's ``team``.

    Returns
    -------
    BuyerEngagementResult

    Notes
    -----
    Views by the sharing rep or any internal user (an event with a ``user_id``) are not buyer
    views. A buyer event after the end of the data's last quarter still counts for its share.
    """
    _check_positive("gap_minutes", gap_minutes)
    chosen = as_quarters(quarters)
    labels = _labels(chosen)
    assets, events, message = _inputs(assets, events)
    prepared = prepare_asset_events(events)
    shares = _to_pandas(
        share_engagement(prepared, gap_minutes=gap_minutes).filter(_.quarter.isin(labels))
    )
    buyer = buyer_events(prepared)
    visits = _to_pandas(
        summarise_visits(split_visits(buyer, gap_minutes=gap_minutes)).filter(
            _.quarter.isin(labels)
        )
    )
    counts = _to_pandas(buyer_event_counts(buyer).filter(_.quarter.isin(labels)))
    shares = _with_asset_info(shares, _asset_info(prepare_assets(assets)))
    teams = pd.DataFrame(
        {"sender_user_id": pd.Series([], dtype=object), "team": pd.Series([], dtype=object)}
    )
    if users is not None and message is None:
        teams = _to_pandas(users.select(sender_user_id=_id(_.user_id), team=_.team.cast("string")))
    shares = shares.merge(teams.drop_duplicates("sender_user_id"), on="sender_user_id", how="left")
    shares["team"] = shares["team"].fillna(UNKNOWN).astype(str)
    return BuyerEngagementResult(
        shares=shares,
        visits=visits,
        event_counts=counts,
        quarters=tuple(labels),
        gap_minutes=float(gap_minutes),
        message=message,
    )


# --------------------------------------------------------------------------------------------
# coverage and waste

_STATUS_SHOWN = ("quarter", *_ASSET_INFO)


def _status_frame(
    assets: ir.Table | None,
    events: ir.Table | None,
    quarters: Sequence[Quarter],
    stale_days: int,
) -> tuple[pd.DataFrame, str | None]:
    assets, events, message = _inputs(assets, events)
    expr = asset_status(
        prepare_assets(assets, stale_days=stale_days),
        prepare_asset_events(events),
        quarters=quarters,
    )
    frame = _to_pandas(expr).sort_values(["quarter", "asset_id"], ignore_index=True)
    return frame, message


@dataclass(frozen=True, slots=True)
class UnusedAssetsResult:
    """Assets nobody used in a quarter, and assets shared that no buyer opened."""

    status: pd.DataFrame  # one row per asset and quarter (asset_status)
    quarters: tuple[str, ...]
    message: str | None = None  # why the result is empty, else None

    def unused(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Assets existing by the quarter's end with no share and no present in it."""
        return _quarter_filter(self.status.loc[~self.status["is_used"]], quarter)

    def never_opened(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Assets shared in the quarter whose shares of that quarter no buyer opened."""
        status = self.status
        mask = (status["n_shares"] > 0) & (status["n_shares_opened"] == 0)
        return _quarter_filter(status.loc[mask], quarter)

    def summary(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Both lists in one: ``quarter, asset_id, title, type, funnel_stage, persona,
        owner_team, issue, n_shares, n_presents, n_internal_views, days_since_update,
        is_never_used``."""
        unused = self.unused(quarter).assign(issue="never shared or presented")
        unopened = self.never_opened(quarter).assign(issue="shared, never opened")
        columns = [
            *_STATUS_SHOWN,
            "issue",
            "n_shares",
            "n_presents",
            "n_internal_views",
            "days_since_update",
            "is_never_used",
        ]
        out = pd.concat([unused, unopened], ignore_index=True)
        if out.empty:
            return pd.DataFrame(columns=columns)
        return out.loc[:, columns].sort_values(["quarter", "issue", "asset_id"], ignore_index=True)

    def by_quarter(self) -> pd.DataFrame:
        """``quarter, n_assets, n_unused, share_unused, n_shared_never_opened,
        n_never_used`` (never shared or presented at any time)."""
        status = self.status.assign(
            is_unopened=(self.status["n_shares"] > 0) & (self.status["n_shares_opened"] == 0)
        )
        out = status.groupby("quarter").agg(
            n_assets=("asset_id", "nunique"),
            n_unused=("is_used", lambda s: int((~s.astype(bool)).sum())),
            n_shared_never_opened=("is_unopened", "sum"),
            n_never_used=("is_never_used", "sum"),
        )
        out = out.reindex(list(self.quarters), fill_value=0).rename_axis("quarter").reset_index()
        out = out.astype({c: "int64" for c in out.columns if c.startswith("n_")})
        out.insert(3, "share_unused", _safe_ratio(out["n_unused"], out["n_assets"]))
        return out

    def change(self) -> pd.DataFrame:
        """Quarter-over-quarter change of :meth:`by_quarter`."""
        metrics = ["n_assets", "n_unused", "share_unused", "n_shared_never_opened"]
        return compare_quarters(self.by_quarter(), metrics=metrics)


def find_unused_assets(
    assets: ir.Table | None,
    events: ir.Table | None,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
) -> UnusedAssetsResult:
    """Find the assets not shared or presented in each quarter, and those shared, never opened.

    Parameters
    ----------
    assets, events : ibis.Table or None
        ``assets`` and ``asset_events``; None when absent (empty result with ``message``).
    quarters : quarter or quarters

    Returns
    -------
    UnusedAssetsResult
        ``status`` holds every asset created before each quarter's end, used or not;
        ``is_never_used`` marks assets with no event of any kind in the whole export,
        ``is_never_shared`` those never shared or presented (internal views at most).

    Notes
    -----
    Internal views do not make an asset used. An asset that expired before the quarter is
    still listed (with ``expires_at``), so marketing can retire it.
    """
    chosen = as_quarters(quarters)
    status, message = _status_frame(assets, events, chosen, 365)
    return UnusedAssetsResult(status=status, quarters=tuple(_labels(chosen)), message=message)


@dataclass(frozen=True, slots=True)
class StaleAssetsResult:
    """Assets past their refresh date or expiry, and whether sales still sends them."""

    status: pd.DataFrame  # one row per asset and quarter (asset_status)
    stale_days: int  # not updated for this many days: stale
    quarters: tuple[str, ...]
    message: str | None = None

    def stale(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Assets stale at some instant of the quarter (``stale_since < end``)."""
        return _quarter_filter(self.status.loc[self.status["is_stale"]], quarter)

    def still_sent(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Stale assets that sales shared in the quarter *while stale*: at least one
        ``share`` event at or after ``stale_since`` (``n_shares_while_stale > 0``)."""
        stale = self.stale(quarter)
        return stale.loc[stale["n_shares_while_stale"] > 0].reset_index(drop=True)

    def summary(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Stale assets still sent: ``quarter, asset_id, title, ..., issue, n_shares_while_stale,
        n_shares, n_presents, days_since_update, last_updated_at, expires_at``."""
        sent = self.still_sent(quarter)
        columns = [
            *_STATUS_SHOWN,
            "issue",
            "n_shares_while_stale",
            "n_shares",
            "n_presents",
            "days_since_update",
            "last_updated_at",
            "expires_at",
        ]
        if sent.empty:
            return pd.DataFrame(columns=columns)
        sent = sent.assign(issue=[self._issue(row) for row in sent.itertuples()])
        return sent.loc[:, columns].sort_values(
            ["quarter", "n_shares", "asset_id"],
            ascending=[True, False, True],
            ignore_index=True,
        )

    def _issue(self, row: Any) -> str:
        parts = []
        if row.is_expired:
            parts.append(f"expired {row.expires_at:%Y-%m-%d}")
        if row.is_not_updated:
            parts.append(f"not updated for {row.days_since_update:.0f} days")
        return "stale, still sent: " + "; ".join(parts)

    def by_quarter(self) -> pd.DataFrame:
        """``quarter, n_stale, n_stale_still_sent, n_shares_while_stale``."""
        status = self.status.assign(
            is_sent=self.status["is_stale"] & (self.status["n_shares_while_stale"] > 0)
        )
        out = status.groupby("quarter").agg(
            n_stale=("is_stale", "sum"),
            n_stale_still_sent=("is_sent", "sum"),
            n_shares_while_stale=("n_shares_while_stale", "sum"),
        )
        out = out.reindex(list(self.quarters), fill_value=0).rename_axis("quarter").reset_index()
        return out.astype({c: "int64" for c in out.columns if c.startswith("n_")})

    def change(self) -> pd.DataFrame:
        """Quarter-over-quarter change of :meth:`by_quarter`."""
        metrics = ["n_stale", "n_stale_still_sent", "n_shares_while_stale"]
        return compare_quarters(self.by_quarter(), metrics=metrics)


def find_stale_assets(
    assets: ir.Table | None,
    events: ir.Table | None,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
    stale_days: int = 365,
) -> StaleAssetsResult:
    """Find the stale assets of each quarter and those still being sent to buyers.

    Parameters
    ----------
    assets, events : ibis.Table or None
        ``assets`` and ``asset_events``; None when absent (empty result with ``message``).
    quarters : quarter or quarters
    stale_days : int, default 365
        ``AssetParams.stale_days``: an asset not updated for this many days (of 24 h) is stale.

    Returns
    -------
    StaleAssetsResult

    Notes
    -----
    ``stale_since`` = the earlier of ``last_updated_at + stale_days`` and ``expires_at``
    (included: an asset is stale from that instant). An asset is stale in a quarter when
    ``stale_since`` falls before the quarter's end (``updated_at`` more than ``stale_days``
    before it, or ``expires_at`` before it); it is *still sent* when it was shared (a
    ``share`` event; presenting is not sending) in the quarter at or after ``stale_since``
    (``n_shares_while_stale > 0``): a share one second before the asset turned stale does
    not make it still sent, a share at that instant does. An asset updated exactly
    ``stale_days`` before the quarter's end becomes stale at the first instant of the next
    quarter, so it is not stale in this one.
    """
    _check_positive("stale_days", stale_days)
    chosen = as_quarters(quarters)
    status, message = _status_frame(assets, events, chosen, stale_days)
    return StaleAssetsResult(
        status=status,
        stale_days=int(stale_days),
        quarters=tuple(_labels(chosen)),
        message=message,
    )


@dataclass(frozen=True, slots=True)
class CoverageGapsResult:
    """Funnel stages and personas for which no asset was used in a quarter."""

    coverage: pd.DataFrame  # quarter, dimension, value, n_assets, n_assets_used, is_gap
    quarters: tuple[str, ...]
    message: str | None = None

    def gaps(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """The rows with ``is_gap``: no asset of that stage or persona was used."""
        return _quarter_filter(self.coverage.loc[self.coverage["is_gap"]], quarter)

    def summary(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """:meth:`gaps`."""
        return self.gaps(quarter)

    def by_quarter(self) -> pd.DataFrame:
        """One row per quarter: ``quarter, n_funnel_stages, n_funnel_stage_gaps, n_personas,
        n_persona_gaps`` (stages and personas listed in :attr:`coverage`, and those of them
        with no asset used in the quarter)."""
        coverage = self.coverage
        out = pd.DataFrame({"quarter": list(self.quarters)})
        for dimension in ("funnel_stage", "persona"):
            rows = coverage.loc[coverage["dimension"] == dimension].groupby("quarter")["is_gap"]
            out[f"n_{dimension}s"] = out["quarter"].map(rows.size()).fillna(0).astype("int64")
            gaps = out["quarter"].map(rows.sum()).fillna(0)
            out[f"n_{dimension}_gaps"] = gaps.astype("int64")
        return out

    def change(self, by: str | None = None) -> pd.DataFrame:
        """Quarter-over-quarter change (:func:`compare_quarters`) of the coverage gaps.

        Parameters
        ----------
        by : {None, "value"}
            None: the gap counts of :meth:`by_quarter` (``n_funnel_stage_gaps``,
            ``n_persona_gaps``, and the stages and personas counted). ``"value"``: per
            funnel stage and persona, the metrics ``n_assets``, ``n_assets_used`` and
            ``is_gap`` as 0/1, so a change of +1 is a new gap and -1 a gap closed.

        Returns
        -------
        pandas.DataFrame
            ``metric, quarter, value, previous_quarter, previous_value, change``, after
            ``dimension, name`` (the stage or persona; :attr:`coverage` calls it ``value``)
            with ``by="value"``. Counts change in counts.
        """
        if by is None:
            metrics = ["n_funnel_stage_gaps", "n_persona_gaps", "n_funnel_stages", "n_personas"]
            return compare_quarters(self.by_quarter(), metrics=metrics)
        if by != "value":
            raise ValueError(f"change(by={by!r}): by is None or 'value'")
        per_value = self.coverage.rename(columns={"value": "name"}).astype({"is_gap": "int64"})
        return compare_quarters(
            per_value,
            metrics=["n_assets", "n_assets_used", "is_gap"],
            keys=["dimension", "name"],
        )


def find_coverage_gaps(
    assets: ir.Table | None,
    events: ir.Table | None,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
    people: ir.Table | None = None,
) -> CoverageGapsResult:
    """Find funnel stages and personas with no used asset in each quarter.

    Parameters
    ----------
    assets, events : ibis.Table or None
    quarters : quarter or quarters
    people : ibis.Table, optional
        Adds the buyers' personas (``people.persona``), so a persona with no asset at all is a
        gap too.

    Returns
    -------
    CoverageGapsResult
        ``coverage``: ``quarter, dimension`` (``funnel_stage`` or ``persona``), ``value,
        n_assets`` (existing by the quarter's end), ``n_assets_used, is_gap``
        (``n_assets_used == 0``). Funnel stages are always awareness, consideration,
        decision plus any other stage on an asset; ``"(unknown)"`` is not a stage or persona.
    """
    chosen = as_quarters(quarters)
    labels = _labels(chosen)
    status, message = _status_frame(assets, events, chosen, 365)
    known: dict[str, list[str]] = {"funnel_stage": list(FUNNEL_STAGES), "persona": []}
    if people is not None and "persona" in people.columns and message is None:
        persona = strip_text(_.persona.cast("string"))
        personas = _to_pandas(people.select(persona=persona).distinct())
        known["persona"] = sorted(p for p in personas["persona"].dropna() if p)
    rows = []
    for dimension, base in known.items():
        values = sorted((set(base) | set(status[dimension].dropna())) - {UNKNOWN})
        if message is not None:
            values = []
        grid = pd.MultiIndex.from_product([labels, values], names=["quarter", "value"])
        counts = status.groupby(["quarter", dimension]).agg(
            n_assets=("asset_id", "nunique"), n_assets_used=("is_used", "sum")
        )
        counts.index = counts.index.set_names(["quarter", "value"])
        frame = counts.reindex(grid, fill_value=0).reset_index()
        rows.append(frame.assign(dimension=dimension))
    coverage = pd.concat(rows, ignore_index=True)
    coverage = coverage.astype({"n_assets": "int64", "n_assets_used": "int64"})
    coverage["is_gap"] = coverage["n_assets_used"] == 0
    coverage = coverage.loc[
        :, ["quarter", "dimension", "value", "n_assets", "n_assets_used", "is_gap"]
    ]
    coverage = coverage.sort_values(["quarter", "dimension", "value"], ignore_index=True)
    return CoverageGapsResult(coverage=coverage, quarters=tuple(labels), message=message)


# --------------------------------------------------------------------------------------------
# pipeline association


def _compare_win_rates(frame: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Add win rates, their difference and its Newcombe interval to counts of shared and
    comparable deals."""
    out = frame.copy()
    out["win_rate_shared"] = _safe_ratio(out["n_won_shared"], out["n_shared"])
    out["win_rate_comparable"] = _safe_ratio(out["n_won_comparable"], out["n_comparable"])
    out["diff"] = out["win_rate_shared"] - out["win_rate_comparable"]
    low, high = newcombe_interval(
        out["n_won_shared"],
        out["n_shared"],
        out["n_won_comparable"],
        out["n_comparable"],
        alpha=alpha,
    )
    out["diff_low"], out["diff_high"] = low, high
    out["interpretation"] = CORRELATIONAL
    return out


@dataclass(frozen=True, slots=True)
class DealAssociationResult:
    """Assets on closed deals: viewed before close, and win rates with vs without the asset.

    Every comparison here is **correlational, not causal** (``interpretation`` column): reps
    choose which assets to send and to which deals.
    """

    deals: pd.DataFrame  # closed_deals: one row per deal closed in the quarters
    links: pd.DataFrame  # deal_asset_links: opp_id, asset_id, is_viewed, is_shared
    assets: pd.DataFrame  # asset_id, title, type, funnel_stage, persona, owner_team
    quarters: tuple[str, ...]
    alpha: float = 0.05  # 1 - confidence level (MH Wald interval; Newcombe per segment)
    message: str | None = None
    interpretation: str = field(default=CORRELATIONAL)

    def _linked(self) -> pd.DataFrame:
        return self.links.merge(self.deals, on="opp_id", how="inner")

    def by_segment(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """Win rate where the asset was shared vs comparable deals (same segment, closed in
        the same quarter) where it was not: one row per asset, quarter and segment with at
        least one shared deal.

        Columns: ``asset_id, quarter, segment, n_shared, n_won_shared, n_comparable,
        n_won_comparable, win_rate_shared, win_rate_comparable, diff, diff_low, diff_high``
        (Newcombe interval at ``1 - alpha``), ``interpretation``.
        """
        strata = self.deals.groupby(["quarter", "segment"]).agg(
            n_deals=("opp_id", "nunique"), n_won=("is_won", "sum")
        )
        linked = self._linked()
        shared = linked.loc[linked["is_shared"].astype(bool)]
        out = shared.groupby(["asset_id", "quarter", "segment"]).agg(
            n_shared=("opp_id", "nunique"), n_won_shared=("is_won", "sum")
        )
        out = out.reset_index().merge(strata.reset_index(), on=["quarter", "segment"])
        out["n_comparable"] = out["n_deals"] - out["n_shared"]
        out["n_won_comparable"] = out["n_won"] - out["n_won_shared"]
        out = out.drop(columns=["n_deals", "n_won"])
        out = out.astype({c: "int64" for c in out.columns if c.startswith("n_")})
        out = _compare_win_rates(out, self.alpha)
        return _quarter_filter(
            out.sort_values(["quarter", "asset_id", "segment"], ignore_index=True), quarter
        )

    def summary(self, quarter: QuarterLike | None = None) -> pd.DataFrame:
        """One row per asset and quarter on deals closed in it, most won revenue first.

        Columns: ``quarter, asset_id, title, type, funnel_stage, persona, owner_team,
        n_deals_viewed`` (closed deals whose buying group viewed the asset before close),
        ``n_won_viewed, won_revenue_viewed`` (report currency); then, as context, the crude
        counts and win rates summed over the segments where the asset was shared
        (``n_shared, win_rate_shared, n_comparable, win_rate_comparable, crude_diff``; they
        mix segments, so a segment with a high win rate and many shares inflates
        ``crude_diff``); then the comparison itself, stratified by segment:
        ``n_segments`` (segments with shared and comparable deals), ``diff_mh`` (the
        Mantel-Haenszel risk difference of :meth:`by_segment`'s tables, a fraction),
        ``diff_se`` (Sato's standard error), ``diff_low, diff_high`` (Wald interval at
        ``1 - alpha``), and ``interpretation`` ("correlational, not causal"). See
        :func:`mantel_haenszel_risk_difference_by`.
        """
        linked = self._linked()
        viewed = linked.loc[linked["is_viewed"].astype(bool)].assign(
            won_amount=lambda f: f["amount"].where(f["is_won"].astype(bool), 0.0)
        )
        views = viewed.groupby(["asset_id", "quarter"]).agg(
            n_deals_viewed=("opp_id", "nunique"),
            n_won_viewed=("is_won", "sum"),
            won_revenue_viewed=("won_amount", "sum"),
        )
        counts = ["n_shared", "n_won_shared", "n_comparable", "n_won_comparable"]
        segments = self.by_segment()
        crude = segments.groupby(["asset_id", "quarter"])[counts].sum()
        stratified = mantel_haenszel_risk_difference_by(
            segments,
            ["asset_id", "quarter"],
            successes1="n_won_shared",
            n1="n_shared",
            successes2="n_won_comparable",
            n2="n_comparable",
            alpha=self.alpha,
        ).set_index(["asset_id", "quarter"])
        out = views.join(crude.join(stratified), how="outer").reset_index()
        fill = {
            "n_deals_viewed": 0,
            "n_won_viewed": 0,
            "won_revenue_viewed": 0.0,
            "n_strata": 0,
            **{c: 0 for c in counts},
        }
        out = out.fillna(fill).rename(columns={"n_strata": "n_segments"})
        out = out.astype({c: "int64" for c in out.columns if c.startswith("n_")})
        out["win_rate_shared"] = _safe_ratio(out["n_won_shared"], out["n_shared"])
        out["win_rate_comparable"] = _safe_ratio(out["n_won_comparable"], out["n_comparable"])
        out["crude_diff"] = out["win_rate_shared"] - out["win_rate_comparable"]
        out["interpretation"] = CORRELATIONAL
        out = _with_asset_info(out, self.assets)
        columns = [
            "quarter",
            *_ASSET_INFO,
            "n_deals_viewed",
            "n_won_viewed",
            "won_revenue_viewed",
            "n_shared",
            "win_rate_shared",
            "n_comparable",
            "win_rate_comparable",
            "crude_diff",
            "n_segments",
            "diff_mh",
            "diff_se",
            "diff_low",
            "diff_high",
            "interpretation",
        ]
        out = out.loc[:, columns].sort_values(
            ["quarter", "won_revenue_viewed", "n_deals_viewed", "asset_id"],
            ascending=[True, False, False, True],
            ignore_index=True,
        )
        return _quarter_filter(out, quarter)

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Wald interval (Sato's variance) of the segment-stratified Mantel-Haenszel win-rate
        difference per asset and quarter: ``asset_id, quarter, low, high``."""
        result = self if alpha is None else _replace_alpha(self, _check_alpha(alpha))
        out = result.summary().loc[:, ["asset_id", "quarter", "diff_low", "diff_high"]]
        return out.rename(columns={"diff_low": "low", "diff_high": "high"})

    def by_quarter(self) -> pd.DataFrame:
        """One row per quarter: ``n_deals, n_won, win_rate, won_revenue, n_won_with_view``
        (won deals whose buying group viewed at least one asset before close),
        ``share_won_with_view, won_revenue_with_view, n_deals_with_share,
        win_rate_with_share, win_rate_without_share``."""
        deals = self.deals.copy()
        linked = self.links
        viewed = set(linked.loc[linked["is_viewed"].astype(bool), "opp_id"])
        shared = set(linked.loc[linked["is_shared"].astype(bool), "opp_id"])
        deals["is_won"] = deals["is_won"].astype(bool)
        deals["has_view"] = deals["opp_id"].isin(viewed)
        deals["has_share"] = deals["opp_id"].isin(shared)
        deals["won_amount"] = deals["amount"].where(deals["is_won"], 0.0)
        deals["won_with_view"] = deals["is_won"] & deals["has_view"]
        deals["won_with_share"] = deals["is_won"] & deals["has_share"]
        deals["won_without_share"] = deals["is_won"] & ~deals["has_share"]
        deals["revenue_with_view"] = deals["won_amount"].where(deals["has_view"], 0.0)
        out = deals.groupby("quarter").agg(
            n_deals=("opp_id", "nunique"),
            n_won=("is_won", "sum"),
            won_revenue=("won_amount", "sum"),
            n_won_with_view=("won_with_view", "sum"),
            won_revenue_with_view=("revenue_with_view", "sum"),
            n_deals_with_share=("has_share", "sum"),
            n_won_with_share=("won_with_share", "sum"),
            n_won_without_share=("won_without_share", "sum"),
        )
        out = out.reindex(list(self.quarters), fill_value=0).rename_axis("quarter").reset_index()
        out = out.astype({c: "int64" for c in out.columns if c.startswith("n_")})
        out["win_rate"] = _safe_ratio(out["n_won"], out["n_deals"])
        out["share_won_with_view"] = _safe_ratio(out["n_won_with_view"], out["n_won"])
        out["win_rate_with_share"] = _safe_ratio(
            out["n_won_with_share"], out["n_deals_with_share"]
        )
        out["win_rate_without_share"] = _safe_ratio(
            out["n_won_without_share"], out["n_deals"] - out["n_deals_with_share"]
        )
        out["interpretation"] = CORRELATIONAL
        return out

    def change(self) -> pd.DataFrame:
        """Quarter-over-quarter change of :meth:`by_quarter`."""
        metrics = [
            "n_deals",
            "win_rate",
            "won_revenue",
            "share_won_with_view",
            "won_revenue_with_view",
            "win_rate_with_share",
            "win_rate_without_share",
        ]
        return compare_quarters(self.by_quarter(), metrics=metrics)


def _replace_alpha(result: DealAssociationResult, alpha: float) -> DealAssociationResult:
    return DealAssociationResult(
        deals=result.deals,
        links=result.links,
        assets=result.assets,
        quarters=result.quarters,
        alpha=alpha,
        message=result.message,
    )


def associate_assets_with_deals(
    assets: ir.Table | None,
    events: ir.Table | None,
    opportunities: ir.Table,
    *,
    quarters: QuarterLike | Iterable[QuarterLike],
    accounts: ir.Table | None = None,
    people: ir.Table | None = None,
    opportunity_people: ir.Table | None = None,
    lookback_days: int | None = None,
    alpha: float = 0.05,
) -> DealAssociationResult:
    """Associate assets with the deals closed in each quarter (correlational, not causal).

    Parameters
    ----------
    assets, events : ibis.Table or None
        ``assets`` and ``asset_events``; None when absent (empty result with ``message``).
    opportunities : ibis.Table
        ``opportunities``; deals are those closed in ``quarters``.
    quarters : quarter or quarters
    accounts : ibis.Table, optional
        Gives each deal its ``segment`` (comparable deals share it); without it all deals are
        one segment ``"(unknown)"``.
    people : ibis.Table, optional
        Fills an event's missing ``account_id`` from its person.
    opportunity_people : ibis.Table, optional
        Buying groups; deals it does not list use their account's events.
    lookback_days : int, optional
        Count only events at or after ``created_at - lookback_days``; None: any time before
        the close.
    alpha : float, default 0.05
        1 - the confidence level of the intervals (Wald for the stratified difference of
        ``summary()``, Newcombe for each segment in ``by_segment()``).

    Returns
    -------
    DealAssociationResult

    Notes
    -----
    Comparable deals are closed in the same quarter, in the same segment, and had no share or
    present of the asset before close. ``summary()`` pools the segments' win-rate differences
    with the Mantel-Haenszel risk difference (weights ``n_shared * n_comparable / n_deals``
    per segment; :func:`mantel_haenszel_risk_difference_by`), which assumes one common
    difference across segments; the crude rates it also shows mix segments. Deals are
    independent Bernoulli trials in the intervals; deals of the same account are not
    independent in fact, so the intervals are somewhat too narrow. The association says
    nothing about cause: strong deals may simply get more content.

    References
    ----------
    .. [1] Newcombe, R. G. (1998). Statistics in Medicine 17, 873-890.
    .. [2] Greenland, S. and Robins, J. M. (1985). Biometrics 41, 55-68.
    .. [3] Sato, T. (1989). Biometrics 45, 1323-1324.
    """
    chosen = as_quarters(quarters)
    labels = _labels(chosen)
    alpha = _check_alpha(alpha)
    assets, events, message = _inputs(assets, events)
    prepared = prepare_asset_events(events, people=people)
    deals_expr = closed_deals(opportunities, quarters=chosen, accounts=accounts)
    deals = _to_pandas(deals_expr)
    links = _to_pandas(
        deal_asset_links(
            prepared,
            deals_expr,
            opportunity_people=opportunity_people,
            lookback_days=lookback_days,
        )
    )
    if message is None and deals.empty:
        message = NO_DEALS
    return DealAssociationResult(
        deals=deals,
        links=links,
        assets=_asset_info(prepare_assets(assets)),
        quarters=tuple(labels),
        alpha=alpha,
        message=message,
    )


# --------------------------------------------------------------------------------------------
# report tables

ACTIONS = {
    "never shared or presented": "promote it to sales, or retire it",
    "shared, never opened": "check its fit and how it is sent",
    "stale": "refresh it, or withdraw it from sales",
}


def list_unused_and_stale(
    unused: UnusedAssetsResult, stale: StaleAssetsResult, quarter: QuarterLike
) -> pd.DataFrame:
    """The list marketing can act on: one row per asset with at least one issue in ``quarter``.

    Returns
    -------
    pandas.DataFrame
        ``asset_id, title, type, funnel_stage, persona, owner_team, issues`` (``; ``-joined:
        never shared or presented / shared, never opened / stale, still sent: ...),
        ``action``, ``n_shares, n_shares_while_stale, days_since_update, last_updated_at,
        expires_at, is_never_used``; stale assets first, then unopened, then unused.
    """
    label = str(as_quarters(quarter)[0])
    status = unused.status.loc[unused.status["quarter"] == label]
    issues: dict[str, list[str]] = {}
    actions: dict[str, list[str]] = {}
    rank: dict[str, int] = {}
    unopened, never = "shared, never opened", "never shared or presented"
    order = [
        (stale.summary(label), "stale", 0),
        (unused.never_opened(label).assign(issue=unopened), unopened, 1),
        (unused.unused(label).assign(issue=never), never, 2),
    ]
    for frame, kind, position in order:
        for asset_id, issue in zip(frame["asset_id"], frame["issue"], strict=True):
            issues.setdefault(asset_id, []).append(issue)
            actions.setdefault(asset_id, []).append(ACTIONS[kind])
            rank[asset_id] = min(rank.get(asset_id, position), position)
    columns = [
        *_ASSET_INFO,
        "issues",
        "action",
        "n_shares",
        "n_shares_while_stale",
        "days_since_update",
        "last_updated_at",
        "expires_at",
        "is_never_used",
    ]
    if not issues:
        return pd.DataFrame(columns=columns)
    out = status.loc[status["asset_id"].isin(list(issues))].copy()
    out["issues"] = out["asset_id"].map(lambda a: "; ".join(issues[a]))
    out["action"] = out["asset_id"].map(lambda a: "; ".join(dict.fromkeys(actions[a])))
    out["rank"] = out["asset_id"].map(rank)
    out = out.sort_values(["rank", "n_shares", "asset_id"], ascending=[True, False, True])
    return out.loc[:, columns].reset_index(drop=True)


OVERVIEW_COLUMNS: tuple[str, ...] = (
    "quarter",
    "n_assets",
    "share_assets_used",
    "n_reps",
    "share_reps_using",
    "assets_used_per_rep",
    "n_shares",
    "buyer_view_rate",
    "views_per_share",
    "median_time_viewed_s",
    "mean_completion",
    "n_unused",
    "n_shared_never_opened",
    "n_stale_still_sent",
    "share_won_with_view",
    "won_revenue_with_view",
)


def summarise_quarters(
    usage: AssetUsageResult | None = None,
    engagement: BuyerEngagementResult | None = None,
    unused: UnusedAssetsResult | None = None,
    stale: StaleAssetsResult | None = None,
    deals: DealAssociationResult | None = None,
) -> pd.DataFrame:
    """One row per quarter with the headline numbers of each result (absent: NaN).

    A result without data (its ``message`` says no asset events or no assets table) adds
    nothing, so "0 unused assets" never stands for "no data"; with no result left, the frame
    has no rows.

    Returns
    -------
    pandas.DataFrame
        :data:`OVERVIEW_COLUMNS`: fractions as fractions, times in seconds, revenue in the
        report currency.
    """
    missing = (NO_EVENTS, NO_ASSETS)
    usage, engagement, unused, stale, deals = (
        None if r is None or r.message in missing else r
        for r in (usage, engagement, unused, stale, deals)
    )
    parts: list[pd.DataFrame] = []
    if usage is not None:
        parts.append(
            usage.by_quarter().loc[
                :,
                [
                    "quarter",
                    "n_assets",
                    "share_assets_used",
                    "n_reps",
                    "share_reps_using",
                    "assets_used_per_rep",
                    "n_shares",
                ],
            ]
        )
    if engagement is not None:
        parts.append(
            engagement.by_quarter().loc[
                :,
                [
                    "quarter",
                    "buyer_view_rate",
                    "views_per_share",
                    "median_time_viewed_s",
                    "mean_completion",
                ],
            ]
        )
    if unused is not None:
        parts.append(unused.by_quarter().loc[:, ["quarter", "n_unused", "n_shared_never_opened"]])
    if stale is not None:
        parts.append(stale.by_quarter().loc[:, ["quarter", "n_stale_still_sent"]])
    if deals is not None:
        parts.append(
            deals.by_quarter().loc[:, ["quarter", "share_won_with_view", "won_revenue_with_view"]]
        )
    quarters = sorted({q for part in parts for q in part["quarter"]})
    out = pd.DataFrame({"quarter": quarters})
    for part in parts:
        out = out.merge(part, on="quarter", how="left")
    for column in OVERVIEW_COLUMNS:
        if column not in out.columns:
            out[column] = np.nan
    return out.loc[:, list(OVERVIEW_COLUMNS)]


KPIS: tuple[tuple[str, str, str, bool, bool], ...] = (
    # (column, kpi name, unit, headline, higher_is_better)
    ("share_assets_used", "Share of assets used by sales", "fraction", True, True),
    ("share_reps_using", "Reps sharing at least one asset", "fraction", False, True),
    ("assets_used_per_rep", "Assets used per rep", "ratio", False, True),
    ("n_shares", "Assets shared with buyers", "count", False, True),
    ("buyer_view_rate", "Buyer view rate of shared assets", "fraction", True, True),
    ("mean_completion", "Completion of opened assets", "fraction", False, True),
    ("n_unused", "Assets never shared or presented", "count", False, False),
    ("n_stale_still_sent", "Stale assets still sent", "count", False, False),
    (
        "share_won_with_view",
        "Won deals with an asset viewed before close",
        "fraction",
        False,
        True,
    ),
)


def build_asset_kpis(
    overview: pd.DataFrame, *, source: str = "asset_usage#tbl-asset-quarter-overview"
) -> pd.DataFrame:
    """The ``kpis-asset_usage`` table: ``kpi, quarter, value, unit, source, headline,
    higher_is_better`` (docs/notebooks.md, item 5), one row per KPI and quarter.

    ``overview`` is :func:`summarise_quarters`; KPIs whose value is NaN are left out.
    """
    rows = []
    for column, name, unit, headline, higher in KPIS:
        for quarter, value in zip(overview["quarter"], overview[column], strict=True):
            if pd.notna(value):
                rows.append((name, quarter, float(value), unit, source, headline, higher))
    columns = ["kpi", "quarter", "value", "unit", "source", "headline", "higher_is_better"]
    return pd.DataFrame(rows, columns=columns)
