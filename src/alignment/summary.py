"""Headline KPIs for the executive summary, written as sentences with the change vs last quarter.

Each study notebook saves a ``kpis-<study>`` table (docs/notebooks.md, item 5) with columns
``kpi, quarter, value, unit, source`` and optionally ``headline`` (bool) and ``higher_is_better``
(bool). This module joins them and says what changed; it computes no KPI itself, so every
number in a sentence traces back to the ``source`` cell that shows it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

KPI_COLUMNS = ("kpi", "quarter", "value", "unit", "source")
STUDY_ORDER = ("funnel_sla", "lead_scoring", "attribution", "asset_usage", "conversion_lift")
"""Report order of the studies (``params.STUDIES``): headline slots are dealt in this order."""
MIN_HEADLINES = 5
"""The executive summary is meant to show 5 to 7 headline KPIs (DESIGN.md, "Quarterly
report"). Fewer are never padded with KPIs not marked as headlines: :func:`as_bullets` says
that they are fewer."""
MAX_HEADLINES = 7


def read_kpis(tables_dir: str | Path) -> pd.DataFrame:
    """All ``kpis-*.csv`` tables of a build folder's ``tables/`` in one frame (may be empty)."""
    frames = []
    for path in sorted(Path(tables_dir).glob("kpis-*.csv")):
        frame = pd.read_csv(path, dtype={"quarter": str, "kpi": str, "unit": str, "source": str})
        missing = [c for c in KPI_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path.name} lacks the KPI columns {', '.join(missing)}")
        frames.append(frame.assign(study=path.stem.removeprefix("kpis-")))
    if not frames:
        return pd.DataFrame(columns=[*KPI_COLUMNS, "study"])
    return pd.concat(frames, ignore_index=True)


def format_value(value: float, unit: str) -> str:
    """A KPI value as a reader sees it: fractions in percent, money and counts with separators.

    Examples
    --------
    >>> format_value(0.7412, "fraction"), format_value(1234567, "USD"), format_value(5.25, "hours")
    ('74.1 %', 'USD 1,234,567', '5.2 hours')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not available"
    if unit == "fraction":
        return f"{100 * value:.1f} %"
    if unit == "count":
        return f"{value:,.0f}"
    if unit in ("hours", "days"):
        return f"{value:,.1f} {unit}"
    if unit == "ratio":
        return f"{value:,.2f}"
    return f"{unit} {value:,.0f}"


def format_change(current: float, previous: float, unit: str) -> str:
    """The change from ``previous`` to ``current``: points for fractions, percent otherwise.

    Examples
    --------
    >>> format_change(0.74, 0.61, "fraction"), format_change(110, 100, "count")
    ('+13.0 pts', '+10.0 %')
    >>> format_change(0.4899, 0.4902, "fraction")  # rounds to zero: no "-0.0"
    '+0.0 pts'
    """
    if unit == "fraction":
        return f"{_no_negative_zero(100 * (current - previous)):+.1f} pts"
    if previous == 0:
        return "new" if current else "no change"
    return f"{_no_negative_zero(100 * (current / previous - 1)):+.1f} %"


def _no_negative_zero(change: float) -> float:
    """``change`` rounded to one decimal, with a change that rounds to zero shown as +0.0."""
    return round(change, 1) + 0.0


def describe_kpi(name: str, unit: str, current: float, previous: float | None, prev_q: str) -> str:
    """One sentence: "SLA compliance rose from 61.0 % in 2026Q2 to 74.0 % (+13.0 pts)."

    Examples
    --------
    >>> describe_kpi("SLA compliance", "fraction", 0.74, 0.61, "2026Q2")
    'SLA compliance rose from 61.0 % in 2026Q2 to 74.0 % (+13.0 pts).'
    >>> describe_kpi("Sales share", "fraction", 0.4899, 0.4902, "2026Q2")
    'Sales share was 49.0 %, as in 2026Q2.'
    """
    shown = format_value(current, unit)
    if previous is None or (isinstance(previous, float) and math.isnan(previous)):
        return f"{name} was {shown} (no earlier quarter to compare)."
    if math.isclose(current, previous, rel_tol=1e-9, abs_tol=1e-12):
        return f"{name} was unchanged at {shown}."
    before = format_value(previous, unit)
    if before == shown:  # a change smaller than the shown precision is no change to a reader
        return f"{name} was {shown}, as in {prev_q}."
    verb = "rose" if current > previous else "fell"
    change = format_change(current, previous, unit)
    return f"{name} {verb} from {before} in {prev_q} to {shown} ({change})."


def headline_table(kpis: pd.DataFrame, quarter: str, previous: str) -> pd.DataFrame:
    """One row per KPI: ``kpi, unit, <previous>, <quarter>, change, source, sentence``.

    Headline KPIs (``headline`` true, where the column exists, and a value this quarter) come
    first, dealt round robin over the studies in report order (each study's in its table's
    order); at most :data:`MAX_HEADLINES` are marked ``is_headline``.
    """
    if kpis.empty:
        columns = ["kpi", "unit", previous, quarter, "change", "source", "sentence", "is_headline"]
        return pd.DataFrame(columns=columns)
    order = kpis.drop_duplicates("kpi")["kpi"].tolist()
    # groupby keeps a KPI whose every value is missing (pivot_table would drop it)
    pivot = kpis.groupby(["kpi", "quarter"])["value"].first().unstack("quarter")
    meta = kpis.drop_duplicates("kpi").set_index("kpi")
    rows = []
    for name in order:
        current = pivot.at[name, quarter] if quarter in pivot.columns else float("nan")
        before = pivot.at[name, previous] if previous in pivot.columns else float("nan")
        unit = str(meta.at[name, "unit"])
        sentence = (
            "" if math.isnan(current) else describe_kpi(name, unit, current, before, previous)
        )
        is_headline = bool(meta.at[name, "headline"]) if "headline" in meta.columns else True
        rows.append(
            {
                "kpi": name,
                "unit": unit,
                previous: before,
                quarter: current,
                "change": "" if math.isnan(before) or math.isnan(current)
                else format_change(current, before, unit),
                "source": meta.at[name, "source"],
                "sentence": sentence,
                "is_headline": is_headline,
            }
        )  # fmt: skip
    table = pd.DataFrame(rows)
    table["study"] = [
        str(meta.at[name, "study"]) if "study" in meta.columns else "" for name in order
    ]
    candidates = table.is_headline & (table.sentence != "")
    # Round robin over the studies (in report order), so no one study fills every slot.
    study_rank = {name: i for i, name in enumerate(STUDY_ORDER)}
    turn = table[candidates].groupby("study", sort=False).cumcount()
    table["slot"] = float("inf")
    table.loc[candidates, "slot"] = turn * 100 + table.loc[candidates, "study"].map(
        lambda s: study_rank.get(s, len(study_rank))
    )
    table = table.sort_values("slot", kind="stable").reset_index(drop=True)
    table["is_headline"] = table.slot.rank(method="first") <= MAX_HEADLINES
    table.loc[table.slot == float("inf"), "is_headline"] = False
    return table.drop(columns="slot")


def headline_sentences(table: pd.DataFrame) -> list[str]:
    """The sentences of the headline rows of :func:`headline_table`, in order."""
    return table.loc[table.is_headline, "sentence"].tolist()


def as_bullets(sentences: Iterable[str], *, minimum: int = MIN_HEADLINES) -> str:
    """Markdown bullet list, each sentence escaped (KPI names could one day come from data).

    When there are fewer than ``minimum`` sentences a closing note says how many there are, so
    a short executive summary is never silently short.

    Examples
    --------
    >>> print(as_bullets(["MQLs rose.", "Win rate fell."], minimum=2))
    - MQLs rose.
    - Win rate fell.
    """
    from alignment.plots import escape_markdown

    sentences = list(sentences)
    text = "\n".join(f"- {escape_markdown(s)}" for s in sentences)
    if len(sentences) >= minimum:
        return text
    how_many = f"Only {len(sentences)}" if sentences else "No"
    kpi = "KPI" if len(sentences) <= 1 else "KPIs"
    note = (
        f"*{how_many} headline {kpi} had a value this quarter, fewer than the {minimum} this "
        "summary is meant to show; the appendix lists every KPI the studies report.*"
    )
    return f"{text}\n\n{note}" if text else note


def display_kpis(table: pd.DataFrame, quarter: str, previous: str) -> pd.DataFrame:
    """:func:`headline_table` as the report shows it: ``kpi, <previous>, <quarter>, change,
    source`` with values formatted in their units (text, so the table is not re-formatted)."""
    shown = table.loc[:, ["kpi", previous, quarter, "change", "source"]].copy()
    for column in (previous, quarter):
        shown[column] = [
            format_value(v, u) for v, u in zip(table[column], table.unit, strict=True)
        ]
    return shown.reset_index(drop=True)
