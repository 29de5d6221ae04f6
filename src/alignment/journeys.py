"""Touchpoints → ordered journeys per person or account, cut at the first conversion.

Everything here takes and returns ``ibis.Table`` expressions and executes nothing, so the same
code runs in DuckDB (the embedded default) and on Spark or BigQuery unchanged; the caller
(a notebook, through ``alignment.store``) executes the small aggregated result once.

Definitions (all timestamps UTC):

- A **unit** is a person (``unit="person"``) or an account, i.e. a B2B buying group with all
  its people's touches, marketing's and sales' (``unit="account"``).
- A unit's **conversion** is its first conversion event ever (:func:`conversion_events`):
  the first ``SQL`` stage event, the first opportunity created, or the first won opportunity.
- The **analysis window** ``[start_at, end_at)`` (usually a quarter) selects journeys: a
  *converting* journey is a unit whose conversion falls in the window; a *null* journey is a
  unit with at least one touch in the window and no conversion before ``end_at``. Units that
  converted before ``start_at`` are out (they have nothing left to convert).
- A journey's **reference time** is its conversion time, or for a null journey its last touch
  in the window. Its **path** is its touches in ``[reference − lookback_days, reference]``
  (a touch at the conversion instant counts; a touch after it never does), ordered by
  ``ts`` then ``touch_id`` (CRM exports repeat timestamps).
- A step's **channel label** is its channel's name, except that, by default, the sales touches
  (``is_sales_touch``) of a *mixed* channel, one with both sales and marketing touches in the
  window's journeys, are labelled ``"<channel> (sales)"`` (:data:`SALES_LABEL_SUFFIX`): every
  label then belongs to one team, so any model's credit splits into marketing's and sales'
  exactly, touch by touch (:func:`build_journeys`, ``split_mixed_channels``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

import ibis
import ibis.expr.types as ir
from ibis import _

from alignment.store import strip_text

log = logging.getLogger(__name__)

ConversionEvent = Literal["SQL", "Opportunity", "won"]
Unit = Literal["person", "account"]

CONVERSION_EVENTS: tuple[str, ...] = ("SQL", "Opportunity", "won")
UNITS: tuple[str, ...] = ("person", "account")
#: appended to the channel of a sales touch in a channel that also has marketing touches
SALES_LABEL_SUFFIX = " (sales)"


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def touches_with_account(touchpoints: ir.Table, people: ir.Table | None = None) -> ir.Table:
    """Touchpoints with an ``account_id`` and an ``is_sales_touch`` flag on every row.

    ``account_id`` comes from the touch when present and not null, else from ``people``;
    ``is_sales_touch`` defaults to false where the column is absent or null (the contract:
    all touches are marketing's unless marked).
    """
    columns = set(touchpoints.columns)
    touches = touchpoints
    if "is_sales_touch" in columns:
        touches = touches.mutate(is_sales_touch=_.is_sales_touch.fill_null(False))
    else:
        touches = touches.mutate(is_sales_touch=ibis.literal(False))
    if people is None:
        if "account_id" not in columns:
            raise ValueError("touchpoints has no account_id column; pass people to look it up")
        return touches
    lookup = people.select(person_id=_.person_id, person_account_id=_.account_id)
    touches = touches.left_join(lookup, "person_id")
    if "account_id" in columns:
        touches = touches.mutate(account_id=_.account_id.fill_null(_.person_account_id))
    else:
        touches = touches.mutate(account_id=_.person_account_id)
    return touches.drop("person_account_id")


def conversion_events(
    stage_events: ir.Table,
    opportunities: ir.Table,
    *,
    event: ConversionEvent = "SQL",
    unit: Unit = "person",
    people: ir.Table | None = None,
    opportunity_people: ir.Table | None = None,
) -> ir.Table:
    """Each unit's first conversion: ``unit_id, converted_at, value``.

    Parameters
    ----------
    stage_events, opportunities : ibis.Table
        Contract tables.
    event : {"SQL", "Opportunity", "won"}
        ``SQL``: the first SQL stage event (a person's; for an account, its first person's).
        ``Opportunity``: the first opportunity created (an account's; for a person, the first
        opportunity that lists them in ``opportunity_people``, else their first
        ``Opportunity`` stage event). ``won``: the first won opportunity's ``closed_at``.
    unit : {"person", "account"}
        What a journey belongs to.
    people : ibis.Table, optional
        Needed to map persons to accounts for ``unit="account"`` with ``event="SQL"``.
    opportunity_people : ibis.Table, optional
        Links people to opportunities; needed for person-level revenue.

    Returns
    -------
    ibis.Table
        ``unit_id`` (str), ``converted_at`` (timestamp, UTC), ``value`` (float, revenue of the
        won opportunities created at or after the conversion, in the report currency; for a
        person, each won opportunity's amount split equally among the people it lists, so
        value sums to won revenue; 0 where no revenue can be linked).
    """
    _check_choice("event", event, CONVERSION_EVENTS)
    _check_choice("unit", unit, UNITS)
    if event == "SQL" or (
        event == "Opportunity" and unit == "person" and opportunity_people is None
    ):
        stage = "SQL" if event == "SQL" else "Opportunity"
        firsts = (
            stage_events.filter(_.stage == stage)
            .group_by(_.person_id)
            .aggregate(converted_at=_.entered_at.min())
        )
        if unit == "account":
            if people is None:
                raise ValueError("people is needed for account-level SQL conversions")
            firsts = (
                firsts.join(people.select("person_id", "account_id"), "person_id")
                .group_by(unit_id=_.account_id)
                .aggregate(converted_at=_.converted_at.min())
            )
        else:
            firsts = firsts.rename(unit_id="person_id")
    else:
        time_col = "closed_at" if event == "won" else "created_at"
        opps = opportunities.filter(_.is_won.fill_null(False)) if event == "won" else opportunities
        if unit == "account":
            firsts = opps.group_by(unit_id=_.account_id).aggregate(
                converted_at=opps[time_col].min()
            )
        else:
            linked = opps.join(opportunity_people.select("opp_id", "person_id"), "opp_id")
            firsts = linked.group_by(unit_id=_.person_id).aggregate(
                converted_at=linked[time_col].min()
            )
    firsts = firsts.filter(_.converted_at.notnull()).mutate(unit_id=_.unit_id.cast("string"))
    revenue = _won_revenue(opportunities, unit=unit, opportunity_people=opportunity_people)
    joined = firsts.left_join(revenue, firsts.unit_id == revenue.revenue_unit_id)
    value = (
        joined.filter(joined.won_created_at >= joined.converted_at)
        .group_by("unit_id")
        .aggregate(value=_.won_amount.sum())
    )
    out = firsts.left_join(value, "unit_id").select(
        "unit_id", "converted_at", value=_.value.fill_null(0.0).cast("float64")
    )
    return out


def _won_revenue(
    opportunities: ir.Table, *, unit: Unit, opportunity_people: ir.Table | None
) -> ir.Table:
    """Won opportunities as ``revenue_unit_id, won_created_at, won_amount`` (amount split
    equally among an opportunity's people for person units)."""
    won = opportunities.filter(_.is_won.fill_null(False)).select(
        "opp_id", "account_id", won_created_at=_.created_at, amount=_.amount.fill_null(0.0)
    )
    if unit == "account":
        return won.select(
            revenue_unit_id=_.account_id.cast("string"),
            won_created_at=_.won_created_at,
            won_amount=_.amount.cast("float64"),
        )
    if opportunity_people is None:
        return won.select(
            revenue_unit_id=ibis.null("string"),
            won_created_at=_.won_created_at,
            won_amount=ibis.literal(0.0),
        ).limit(0)
    members = opportunity_people.select("opp_id", "person_id").distinct()
    sizes = members.group_by("opp_id").aggregate(n_people=_.count())
    return (
        won.join(members, "opp_id")
        .join(sizes, "opp_id")
        .select(
            revenue_unit_id=_.person_id.cast("string"),
            won_created_at=_.won_created_at,
            won_amount=(_.amount / _.n_people).cast("float64"),
        )
    )


def build_journeys(
    touches: ir.Table,
    conversions: ir.Table,
    *,
    start_at: datetime,
    end_at: datetime,
    unit: Unit = "person",
    lookback_days: int = 90,
    channel_col: str = "channel",
    split_mixed_channels: bool = True,
) -> ir.Table:
    """One row per touch of each journey in ``[start_at, end_at)`` (see the module docstring).

    Parameters
    ----------
    touches : ibis.Table
        Touchpoints with ``account_id`` and ``is_sales_touch`` filled in
        (:func:`touches_with_account`).
    conversions : ibis.Table
        ``unit_id, converted_at, value`` from :func:`conversion_events`.
    start_at, end_at : datetime
        The analysis window, UTC; ``start_at`` included, ``end_at`` excluded.
    unit : {"person", "account"}
    lookback_days : int
        Touches more than this many days (of 24 h) before the reference time are dropped.
    channel_col : str
        The column that names a step of the path (``channel`` by default; ``campaign_id`` or
        ``touch_type`` give finer paths). Null names become ``"(none)"``.
    split_mixed_channels : bool, default True
        Label the sales touches of a mixed channel (one with both sales and marketing touches
        among the journeys' touches) ``"<channel> (sales)"``, so that the models credit them
        apart from the channel's marketing touches; a channel whose touches are all one
        team's keeps its name. False: every touch keeps its channel's name.

    Returns
    -------
    ibis.Table
        ``unit_id, touch_id, ts, channel`` (the label), ``base_channel`` (the channel's own
        name), ``is_sales_touch, step`` (1-based, by ``ts`` then ``touch_id``), ``n_steps,
        is_converted, converted_at`` (null for null journeys), ``reference_at, days_before``
        (reference − ts, in days, ≥ 0, resolution 1 ms), ``value`` (0 for nulls).

    Notes
    -----
    Why split: aggregated paths (:func:`aggregate_paths`) keep one name per touch, so the
    marketing vs sales split of a model's credit can only be a sum over names. Without the
    split a rep's email in an ``email`` channel that marketing also uses is credited as
    marketing's (or, by majority, all of ``email`` as sales'); with it every name belongs to
    one team and the split is exact per touch under every model: rule-based models credit
    the touch's own position, Markov and Shapley treat ``email (sales)`` as a channel of its
    own. The price: a mixed channel becomes two channels, so the Markov chain has more
    states (of order k, up to ``(n + m) ** k`` instead of ``n ** k`` for ``m`` mixed
    channels among ``n``) and the Shapley game more players, and the channel tables show
    both labels. Whether a channel is mixed is decided on the touches in the window's
    journeys (converting and null, within their lookback), the same touches the models see.
    """
    _check_choice("unit", unit, UNITS)
    if lookback_days <= 0:
        raise ValueError(f"lookback_days must be positive; got {lookback_days}")
    if channel_col not in touches.columns:
        raise ValueError(f"channel_col {channel_col!r} is not a touchpoints column")
    start = ibis.timestamp(start_at)
    end = ibis.timestamp(end_at)
    unit_col = "person_id" if unit == "person" else "account_id"
    steps = touches.select(
        unit_id=touches[unit_col].cast("string"),
        touch_id=_.touch_id.cast("string"),
        ts=_.ts,
        base_channel=strip_text(touches[channel_col].cast("string")).fill_null("(none)"),
        is_sales_touch=_.is_sales_touch,
    ).filter(_.unit_id.notnull())
    reference = _journey_references(steps, conversions, start=start, end=end)
    in_path = steps.join(reference, "unit_id").filter(
        (_.ts <= _.reference_at) & (_.ts >= _.reference_at - ibis.interval(days=lookback_days))
    )
    if split_mixed_channels:
        by_channel = ibis.window(group_by=_.base_channel)
        # 0 when the channel has a marketing touch among the journeys' touches
        all_sales = _.is_sales_touch.cast("int64").min().over(by_channel)
        channel = ibis.ifelse(
            _.is_sales_touch & (all_sales == 0),
            _.base_channel + SALES_LABEL_SUFFIX,
            _.base_channel,
        )
    else:
        channel = _.base_channel
    in_path = in_path.mutate(channel=channel)
    by_unit = ibis.window(group_by=_.unit_id, order_by=[_.ts, _.touch_id])  # touch_id breaks ties
    whole_unit = ibis.window(group_by=_.unit_id)
    return in_path.mutate(
        step=ibis.row_number().over(by_unit) + 1,  # ibis counts rows from 0
        n_steps=_.touch_id.count().over(whole_unit),
        # milliseconds, not epoch_seconds(): Spark's unix_timestamp drops the fraction; cast
        # first: Spark reads the literal 86400000.0 as a DECIMAL and rounds the quotient
        days_before=_.reference_at.delta(_.ts, unit="millisecond").cast("float64") / 86_400_000.0,
    ).select(
        "unit_id",
        "touch_id",
        "ts",
        "channel",
        "base_channel",
        "is_sales_touch",
        "step",
        "n_steps",
        "is_converted",
        "converted_at",
        "reference_at",
        "days_before",
        "value",
    )


def _journey_references(
    steps: ir.Table, conversions: ir.Table, *, start: ir.Value, end: ir.Value
) -> ir.Table:
    """``unit_id, is_converted, converted_at, reference_at, value`` per journey in the window."""
    converting = conversions.filter((_.converted_at >= start) & (_.converted_at < end)).select(
        "unit_id",
        is_converted=ibis.literal(True),
        converted_at=_.converted_at,
        reference_at=_.converted_at,
        value=_.value,
    )
    converted_before_end = conversions.filter(_.converted_at < end).select("unit_id")
    # one timestamp type on both sides of the union: Parquet gives timestamp('UTC', 6)
    ts_type = conversions.converted_at.type()
    nulls = (
        steps.filter((_.ts >= start) & (_.ts < end))
        .anti_join(converted_before_end, "unit_id")
        .group_by("unit_id")
        .aggregate(reference_at=_.ts.max())
        .select(
            "unit_id",
            is_converted=ibis.literal(False),
            converted_at=ibis.null(ts_type),
            reference_at=_.reference_at.cast(ts_type),
            value=ibis.literal(0.0),
        )
    )
    return converting.union(nulls)


def aggregate_paths(journeys: ir.Table, *, sep: str = ">") -> ir.Table:
    """Journeys → the ChannelAttribution/DP6 layout: ``path, conversions, nulls, value``.

    One row per distinct path (channel names in step order joined by ``sep``; a ``sep`` inside
    a channel name is replaced by ``_`` so paths split back exactly). Converting journeys with
    no touch in their lookback window have no path and are not counted; :func:`count_journeys`
    reports how many there are.

    Notes
    -----
    The path is built as a list of ``(step, channel)`` structs, sorted and joined, rather than
    with an ordered ``group_concat``: Spark has no ordered string aggregate (ibis 12 refuses
    ``group_concat(order_by=...)`` there), while sorting a collected list works the same in
    DuckDB and Spark. ``step`` is unique within a journey, so the order is exactly ``ts`` then
    ``touch_id``.
    """
    if not sep:
        raise ValueError("sep must be a non-empty string")
    steps = ibis.struct({"step": _.step, "channel": _.channel.replace(sep, "_")})
    per_journey = (
        journeys.group_by(["unit_id", "is_converted"])
        .aggregate(steps=steps.collect(), value=_.value.max())
        # `_` is one row per journey holding its (step, channel) list
        .mutate(path=_.steps.sort().map(lambda s: s.channel).join(sep))
        .drop("steps")
    )
    return (
        per_journey.group_by("path")
        .aggregate(
            conversions=_.is_converted.cast("int64").sum(),
            nulls=(~_.is_converted).cast("int64").sum(),
            value=_.value.sum().cast("float64"),
        )
        .order_by([ibis.desc("conversions"), ibis.desc("nulls"), "path"])
    )


def count_journeys(
    touches: ir.Table,
    conversions: ir.Table,
    *,
    start_at: datetime,
    end_at: datetime,
    unit: Unit = "person",
    lookback_days: int = 90,
) -> ir.Table:
    """One row: ``n_converting, n_null, n_converting_without_touch`` in the window.

    ``n_converting_without_touch`` counts conversions in the window with no touch in their
    lookback window (e.g. leads entered by sales directly): they are in no path.
    """
    journeys = build_journeys(
        touches,
        conversions,
        start_at=start_at,
        end_at=end_at,
        unit=unit,
        lookback_days=lookback_days,
    )
    start, end = ibis.timestamp(start_at), ibis.timestamp(end_at)
    in_window = conversions.filter((_.converted_at >= start) & (_.converted_at < end))
    with_path = journeys.select("unit_id", "is_converted").distinct()
    return with_path.aggregate(
        n_converting=_.is_converted.cast("int64").sum(),
        n_null=(~_.is_converted).cast("int64").sum(),
    ).cross_join(
        in_window.anti_join(with_path.filter(_.is_converted), "unit_id").aggregate(
            n_converting_without_touch=_.count()
        )
    )


def summarise_channels(journeys: ir.Table) -> ir.Table:
    """Per channel of the journeys: touches, sales touches and whether it is a sales channel.

    Aggregated paths carry no per-touch team marker, so the marketing vs sales split of a
    model's credit is a sum over channel labels; this derives which labels are sales' from
    the data rather than from a list of names.

    Parameters
    ----------
    journeys : ibis.Table
        From :func:`build_journeys` (``channel``, ``is_sales_touch``; ``base_channel`` when
        present).

    Returns
    -------
    ibis.Table
        ``channel, base_channel`` (the channel's own name; equal to ``channel`` when the
        journeys have no ``base_channel``), ``n_touches, n_sales_touches,
        is_sales_channel``, ordered by channel. ``is_sales_channel`` is true when more than
        half of the label's touches are sales touches. With ``split_mixed_channels`` (the
        default of :func:`build_journeys`) every label is all one team's, so this is exact;
        without it the majority decides a mixed channel (e.g. a partner channel some reps
        log as their own) and its minority touches go to the other team.

    Examples
    --------
    >>> t = ibis.memtable({"channel": ["email", "call", "call"],
    ...                    "is_sales_touch": [False, True, True]})
    >>> summarise_channels(t).execute()[["channel", "is_sales_channel"]].values.tolist()
    [['call', True], ['email', False]]
    """
    if "base_channel" not in journeys.columns:
        journeys = journeys.mutate(base_channel=_.channel)
    return (
        journeys.group_by(["channel", "base_channel"])
        .aggregate(
            n_touches=_.count(),
            n_sales_touches=_.is_sales_touch.cast("int64").sum(),
        )
        .mutate(is_sales_channel=2 * _.n_sales_touches > _.n_touches)
        .order_by("channel")
    )
