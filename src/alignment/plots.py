"""Figures and report tables in one house style.

``plots`` draws the frames it is given (a results object's ``summary()``) and shows tables the
way the report needs them; it computes no statistics. Every figure has a title, labelled axes
with units and a source note. A notebook cell ends with one call here, for example::

    #| label: tbl-sla-compliance
    #| tbl-cap: "Share of MQLs worked within the SLA, by segment"
    plots.show_table(result.summary(), "tbl-sla-compliance", output_dir=output_dir)

Tables are displayed as Markdown (not a DataFrame's HTML, which makes Quarto pull scripts
from a CDN: PITFALLS.md) and saved as CSV with spreadsheet formulas neutralised; free text
from the data is escaped so it shows as text in HTML.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import pandas as pd

log = logging.getLogger(__name__)

PALETTE = "colorblind"
FIGSIZE = (7.5, 4.2)  # inches: fits an A4/Letter text width at readable font sizes
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def set_style() -> None:
    """Apply the house style (seaborn whitegrid, colour-blind palette, readable sizes)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    mpl.rcParams.update(
        {
            "figure.figsize": FIGSIZE,
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "axes.labelsize": 10,
            "figure.autolayout": True,
        }
    )


def neutralise_formula(value: Any) -> Any:
    """Prefix ``'`` to a string that a spreadsheet would run as a formula; leave others alone.

    Examples
    --------
    >>> (
    ...     neutralise_formula('=HYPERLINK("http://x")'),
    ...     neutralise_formula(-3),
    ...     neutralise_formula("ok"),
    ... )
    ('\\'=HYPERLINK("http://x")', -3, 'ok')
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def escape_markdown(text: str) -> str:
    """Escape ``text`` from the data so Markdown and HTML show it as text, never markup.

    HTML special characters become entities and Markdown's punctuation is backslashed, so
    ``<script>`` reaches the HTML as ``&lt;script&gt;``.

    Examples
    --------
    >>> escape_markdown("<script>alert(1)</script> *deal*")
    '&lt;script&gt;alert(1)&lt;/script&gt; \\\\*deal\\\\*'
    """
    escaped = html.escape(str(text), quote=False)
    return re.sub(r"([\\`*_{}\[\]|#])", r"\\\1", escaped)


def format_table(
    frame: pd.DataFrame,
    *,
    percent: tuple[str, ...] = (),
    decimals: Mapping[str, int] | None = None,
    money: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Numbers as the report shows them: fractions in ``percent`` as ``61.5 %``, ``money``
    with thousands separators, other floats with ``decimals`` (default 2), counts as integers
    with separators; text escaped (:func:`escape_markdown`). Returns strings, no index."""
    import pandas as pd

    decimals = dict(decimals or {})
    shown = pd.DataFrame(index=range(len(frame)))
    for column in frame.columns:
        values = frame[column].reset_index(drop=True)
        if column in percent:
            shown[column] = values.map(lambda v: _shown_number(v, "{:.1f} %", scale=100))
        elif column in money:
            shown[column] = values.map(lambda v: _shown_number(v, "{:,.0f}"))
        elif pd.api.types.is_bool_dtype(values):
            shown[column] = values.map(lambda v: "yes" if v else "no")
        elif pd.api.types.is_integer_dtype(values):
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else f"{int(v):,}")
        elif pd.api.types.is_float_dtype(values):
            pattern = f"{{:,.{decimals.get(column, 2)}f}}"
            shown[column] = values.map(lambda v, pattern=pattern: _shown_number(v, pattern))
        elif pd.api.types.is_datetime64_any_dtype(values):
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else v.strftime("%Y-%m-%d"))
        else:
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else escape_markdown(v))
    shown.columns = [escape_markdown(str(c).replace("_", " ")) for c in frame.columns]
    return shown


def _shown_number(value: Any, pattern: str, *, scale: float = 1.0) -> str:
    """``value * scale`` formatted with ``pattern``; "–" when missing, "+∞"/"−∞" when infinite
    (an interval that a few-cluster bootstrap cannot bound, for example)."""
    import math

    import pandas as pd

    if pd.isna(value):
        return "–"
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    return pattern.format(value * scale)


def save_table(frame: pd.DataFrame, label: str, output_dir: str | Path | None) -> Path | None:
    """Write ``frame`` as ``<output_dir>/tables/<label>.csv`` (formulas neutralised, floats
    at full precision) and ``.parquet``; return the CSV path (None when no ``output_dir``)."""
    if output_dir is None:
        return None
    folder = Path(output_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    safe = frame.reset_index(drop=True).copy()
    for column in safe.columns:
        if safe[column].dtype == object or str(safe[column].dtype).startswith(("str", "string")):
            safe[column] = safe[column].map(neutralise_formula)
    csv_path = folder / f"{label}.csv"
    safe.to_csv(csv_path, index=False)
    frame.reset_index(drop=True).to_parquet(folder / f"{label}.parquet", index=False)
    return csv_path


def show_table(
    frame: pd.DataFrame,
    label: str,
    *,
    output_dir: str | Path | None = None,
    percent: tuple[str, ...] = (),
    decimals: Mapping[str, int] | None = None,
    money: tuple[str, ...] = (),
    empty_message: str = "No rows.",
) -> Any:
    """Save ``frame`` (:func:`save_table`) and display it as a Markdown table.

    Returns an ``IPython.display.Markdown`` object, which a notebook shows and Quarto embeds.
    An empty frame shows ``empty_message`` instead of an empty table.
    """
    from IPython.display import Markdown

    save_table(frame, label, output_dir)
    if frame.empty:
        return Markdown(f"*{escape_markdown(empty_message)}*")
    shown = format_table(frame, percent=percent, decimals=decimals, money=money)
    return Markdown(shown.to_markdown(index=False, disable_numparse=True))


def finish_figure(
    fig: matplotlib.figure.Figure,
    label: str,
    *,
    source: str,
    output_dir: str | Path | None = None,
) -> matplotlib.figure.Figure:
    """Add the source note, save ``<output_dir>/figures/<label>.png`` and return ``fig``."""
    fig.text(0.0, -0.02, f"Source: {source}", ha="left", va="top", fontsize=8, color="0.35")
    if output_dir is not None:
        folder = Path(output_dir) / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{label}.png")
    return fig


# --------------------------------------------------------------------------------------------
# Funnel and hand-off figures (alignment.funnel results' frames)
# --------------------------------------------------------------------------------------------


def plot_cohort_funnel(
    cohorts: pd.DataFrame, *, title: str | None = None
) -> matplotlib.figure.Figure:
    """Grouped bars: share of each quarter's MQL cohort reaching each stage within its window.

    ``cohorts`` is ``CohortResult.summary()`` (columns ``quarter, step, stage, window_days,
    rate, is_censored``); the acceptance row is left out. Censored cohorts (window still
    open) are hatched: their bar is a lower bound.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    steps = cohorts[cohorts.step.str.startswith("MQL→") & ~cohorts.step.str.endswith("accepted")]
    labels = {
        row.stage: f"{row.stage}\n(≤ {row.window_days} d)" for row in steps.itertuples()
    }
    mql = steps.drop_duplicates("quarter").assign(stage="MQL", rate=1.0, is_censored=False)
    frame = pd.concat([mql, steps], ignore_index=True)
    frame = frame.assign(
        percent=100 * frame.rate, stage_label=frame.stage.map({"MQL": "MQL", **labels})
    )
    order = ["MQL", *dict.fromkeys(labels.values())]
    fig, ax = plt.subplots()
    sns.barplot(frame, x="stage_label", y="percent", hue="quarter", order=order, ax=ax)
    hue_order = list(dict.fromkeys(frame.quarter))
    for container, quarter in zip(ax.containers, hue_order, strict=False):
        flags = frame[frame.quarter == quarter].set_index("stage_label").is_censored
        for bar, stage in zip(container, order, strict=False):
            if bool(flags.get(stage, False)):
                bar.set_hatch("//")
                bar.set_edgecolor("0.3")
        ax.bar_label(container, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xlabel("Stage reached within the window after the MQL")
    ax.set_ylabel("Share of the quarter's MQLs (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title or "Cohort conversion of each quarter's MQLs")
    ax.legend(title="MQL quarter (hatched: window still open)", fontsize=8, title_fontsize=8)
    return fig


def plot_hours_to_first_touch(
    leads: pd.DataFrame,
    *,
    sla_hours: float,
    unit: str = "business hours",
    by: str = "region",
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Histogram of hours from MQL to first sales touch with the SLA line, and a box plot
    per ``by`` group.

    ``leads`` is ``SlaResult.leads`` (``hours_to_first_touch``, ``by``); untouched leads are
    not in the histogram (they have no time). Hours beyond 5 × the SLA are shown in the last
    bin, whose edge is labelled.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    touched = leads.dropna(subset=["hours_to_first_touch"])
    cap = 5 * sla_hours
    shown = touched.assign(hours=np.minimum(touched.hours_to_first_touch, cap))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2), width_ratios=(3, 2))
    sns.histplot(shown, x="hours", bins=np.linspace(0, cap, 31), ax=left)
    for ax in (left, right):
        ax.axvline(sla_hours, color="C3", linestyle="--", linewidth=1.5)
    left.text(sla_hours, left.get_ylim()[1] * 0.95, f" SLA {sla_hours:g} h", color="C3",
              va="top", fontsize=9)  # fmt: skip
    left.set_xlabel(f"Hours from MQL to first sales touch ({unit}; ≥ {cap:g} in last bin)")
    left.set_ylabel("MQLs (count)")
    left.set_title("Distribution")
    order = sorted(shown[by].astype(str).unique())
    sns.boxplot(shown.assign(**{by: shown[by].astype(str)}), x="hours", y=by, order=order,
                ax=right, showfliers=False)  # fmt: skip
    right.set_xlabel(f"Hours to first touch ({unit})")
    right.set_ylabel(by.capitalize())
    right.set_title(f"By {by}")
    fig.suptitle(title or "Time from MQL to first sales touch", fontweight="bold")
    return fig


def plot_capacity_vs_inflow(
    units: pd.DataFrame, *, unit: str = "business hours", title: str | None = None
) -> matplotlib.figure.Figure:
    """Left: MQLs per week against SDR capacity per region; right: each rep's utilisation
    against its median hours to first touch.

    ``units`` is ``CapacityResult.summary()`` (``level, unit, mql_per_week,
    capacity_per_week, utilisation, is_over_capacity, median_hours_to_first_touch``); ``unit``
    names the hours (business or elapsed).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    regions = units[units.level == "region"].sort_values("unit")
    reps = units[(units.level == "rep") & units.utilisation.notna()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2))
    sns.barplot(regions, x="unit", y="mql_per_week", color="C0", ax=left, label="MQL inflow")
    left.hlines(regions.capacity_per_week, [i - 0.4 for i in range(len(regions))],
                [i + 0.4 for i in range(len(regions))], colors="black", linewidth=3,
                label="SDR capacity", zorder=3)  # fmt: skip
    for i, row in enumerate(regions.itertuples()):
        if row.is_over_capacity:
            left.annotate("over", (i, row.mql_per_week), ha="center", va="bottom",
                          color="C3", fontweight="bold")  # fmt: skip
    left.set_xlabel("Region")
    left.set_ylabel("Leads per week (count)")
    left.set_title("Inflow vs capacity by region")
    top = max(regions.mql_per_week.max(), regions.capacity_per_week.max(), 1.0)
    left.set_ylim(0, 1.3 * top)  # room for the legend above the bars
    left.legend(fontsize=8, loc="upper left", ncols=2)
    sns.scatterplot(reps.assign(over=reps.is_over_capacity.map({True: "over", False: "within"})),
                    x="utilisation", y="median_hours_to_first_touch", hue="over",
                    hue_order=["within", "over"], palette={"within": "C0", "over": "C3"},
                    ax=right)  # fmt: skip
    right.axvline(1.0, color="0.4", linestyle=":")
    right.set_xlabel("Rep utilisation (inflow / capacity, ratio)")
    right.set_ylabel(f"Median hours to first touch ({unit})")
    right.set_title("Reps: load vs response time")
    right.legend(title="capacity", fontsize=8, title_fontsize=8)
    fig.suptitle(title or "Sales capacity vs MQL inflow", fontweight="bold")
    return fig


# --------------------------------------------------------------------------------------------
# Content-asset figures (alignment.assets results' frames)
# --------------------------------------------------------------------------------------------


def plain_label(text: Any, *, max_chars: int = 40) -> str:
    """Text from the data as a literal Matplotlib label: ``$`` escaped (no mathtext), long
    text shortened with ``…``.

    Examples
    --------
    >>> plain_label("Save $5 and $10 now"), plain_label("x" * 50, max_chars=5)
    ('Save \\\\$5 and \\\\$10 now', 'xxxx…')
    """
    shown = str(text)
    if len(shown) > max_chars:
        shown = shown[: max_chars - 1] + "…"
    return shown.replace("$", r"\$")


def _stage_order(stages: Any) -> list[str]:
    known = ["awareness", "consideration", "decision"]
    present = [str(s) for s in dict.fromkeys(stages)]
    return [s for s in known if s in present] + sorted(s for s in present if s not in known)


def plot_asset_type_by_stage(
    usage_by_group: pd.DataFrame, *, quarter: str, title: str | None = None
) -> matplotlib.figure.Figure:
    """Heat map of shares to buyers per asset type (rows) and funnel stage (columns).

    ``usage_by_group`` is ``AssetUsageResult.by("type", "funnel_stage")``; one quarter is
    drawn. Each cell shows the shares and, below, used / existing assets; colour is shares.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = usage_by_group.loc[usage_by_group["quarter"] == quarter]
    types = sorted(frame["type"].astype(str).unique())
    stages = _stage_order(frame["funnel_stage"].astype(str))
    keyed = frame.assign(type=frame["type"].astype(str), stage=frame["funnel_stage"].astype(str))
    shares = keyed.pivot_table(index="type", columns="stage", values="n_shares", aggfunc="sum")
    shares = shares.reindex(index=types, columns=stages)
    used = keyed.pivot_table(index="type", columns="stage", values="n_assets_used", aggfunc="sum")
    total = keyed.pivot_table(index="type", columns="stage", values="n_assets", aggfunc="sum")
    used, total = used.reindex_like(shares), total.reindex_like(shares)
    notes = shares.copy().astype(object)
    for t in shares.index:
        for s in shares.columns:
            n, k, m = total.at[t, s], used.at[t, s], shares.at[t, s]
            notes.at[t, s] = "" if n != n else f"{m:.0f}\n{k:.0f}/{n:.0f}"
    height = max(3.0, 0.55 * len(types) + 1.6)
    fig, ax = plt.subplots(figsize=(7.5, height))
    sns.heatmap(shares, annot=notes.to_numpy(), fmt="", cmap="Blues", linewidths=0.5,
                cbar_kws={"label": "Shares to buyers (count)"}, ax=ax)  # fmt: skip
    ax.grid(False)  # the house grid would cross the blank (no asset) cells
    ax.set_xticklabels([plain_label(s) for s in shares.columns], rotation=0)
    ax.set_yticklabels([plain_label(t) for t in shares.index], rotation=0)
    ax.set_xlabel("Funnel stage (cell: shares; used / existing assets; blank: no asset)")
    ax.set_ylabel("Asset type")
    ax.set_title(title or f"Shares to buyers by asset type and funnel stage, {quarter}")
    return fig


def plot_buyer_engagement(
    opened_shares: pd.DataFrame,
    device_mix: pd.DataFrame,
    *,
    title: str | None = None,
    max_minutes: float = 30.0,
) -> matplotlib.figure.Figure:
    """Three panels on opened shares: minutes viewed, completion, and buyer views by device.

    ``opened_shares`` is ``BuyerEngagementResult.opened_shares(quarter)`` (``minutes_viewed``,
    ``completion``); ``device_mix`` is ``BuyerEngagementResult.device_mix(quarter)``. Times
    above ``max_minutes`` fall in the last bin.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(10, 3.8), width_ratios=(3, 3, 2))
    minutes = np.minimum(opened_shares["minutes_viewed"].astype(float), max_minutes)
    sns.histplot(x=minutes, bins=np.linspace(0, max_minutes, 31), ax=left)
    left.set_xlabel(f"Minutes viewed per opened share (≥ {max_minutes:g} in last bin)")
    left.set_ylabel("Opened shares (count)")
    left.set_title("Time viewed")
    completion = 100 * opened_shares["completion"].dropna().astype(float)
    sns.histplot(x=completion, bins=np.linspace(0, 100, 11), ax=middle)
    middle.set_xlabel("Completion: largest share of pages viewed (%)")
    middle.set_ylabel("Opened shares (count)")
    middle.set_title("Completion")
    mix = device_mix.groupby("device", as_index=False)["n_views"].sum()
    mix = mix.assign(percent=100 * mix["n_views"] / max(mix["n_views"].sum(), 1))
    mix = mix.assign(device=mix["device"].map(plain_label)).sort_values("percent", ascending=False)
    sns.barplot(mix, x="device", y="percent", color="C0", ax=right)
    right.set_xlabel("Device")
    right.set_ylabel("Buyer views (%)")
    right.set_title("Device mix")
    fig.suptitle(title or "What buyers did with the assets sales shared", fontweight="bold")
    return fig


def plot_asset_usage_ranking(
    by_asset: pd.DataFrame, *, top: int = 15, title: str | None = None
) -> matplotlib.figure.Figure:
    """Horizontal bars: shares and presents of the ``top`` most used assets of one quarter.

    ``by_asset`` is ``AssetUsageResult.by_asset(quarter)`` (already ranked); asset titles are
    drawn as literal text, shortened.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    shown = by_asset.head(top)
    labels = [f"{plain_label(t, max_chars=32)} ({plain_label(a, max_chars=12)})"
              for t, a in zip(shown["title"], shown["asset_id"], strict=True)]  # fmt: skip
    long = shown.assign(label=labels).melt(
        id_vars=["label"], value_vars=["n_shares", "n_presents"], var_name="use", value_name="n"
    )
    long["use"] = long["use"].map({"n_shares": "shared", "n_presents": "presented"})
    fig, ax = plt.subplots(figsize=(8.5, max(3.0, 0.32 * len(shown) + 1.4)))
    sns.barplot(long, y="label", x="n", hue="use", ax=ax, orient="h")
    ax.set_xlabel("Uses in the quarter (count)")
    ax.set_ylabel("Asset (id)")
    ax.set_title(title or f"Most used assets (top {top})")
    ax.legend(title="", fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# Lead-scoring figures (alignment.scoring results' frames)
# --------------------------------------------------------------------------------------------


def plot_calibration(
    calibration: pd.DataFrame, *, title: str | None = None
) -> matplotlib.figure.Figure:
    """Reliability diagram: observed conversion against mean predicted probability per bin.

    ``calibration`` is ``ScoreEvaluation.calibration`` (``bin, n, mean_predicted,
    observed_rate, observed_low, observed_high``); the vertical bars are the observed rate's
    interval, the dashed diagonal is perfect calibration. Both axes in percent.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    x = 100 * calibration["mean_predicted"]
    y = 100 * calibration["observed_rate"]
    errors = [
        100 * (calibration["observed_rate"] - calibration["observed_low"]),
        100 * (calibration["observed_high"] - calibration["observed_rate"]),
    ]
    top = max(float(x.max()), float((100 * calibration["observed_high"]).max()), 1.0) * 1.08
    ax.plot([0, top], [0, top], linestyle="--", color="0.5", linewidth=1,
            label="perfect calibration")  # fmt: skip
    size = f"{calibration['n'].min():,}–{calibration['n'].max():,}"
    ax.errorbar(x, y, yerr=errors, fmt="o", color="C0", capsize=3,
                label=f"bin of {size} leads (observed, 95 % CI)")  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("Mean predicted conversion probability (%)")
    ax.set_ylabel("Observed conversion rate (%)")
    ax.set_title(title or "Calibration of the lead score")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_gain_by_decile(
    gain: pd.DataFrame,
    *,
    rule_point: tuple[float, float] | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Cumulative gain: share of all converted leads found in the best-scored deciles.

    ``gain`` is ``ScoreEvaluation.gain`` (``decile, cum_share_leads, cum_share_converted``);
    the diagonal is a random order of leads. ``rule_point`` (fractions: share of leads sent,
    share of converted leads found) marks the current MQL rule.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    x = [0.0, *(100 * gain["cum_share_leads"])]
    y = [0.0, *(100 * gain["cum_share_converted"])]
    ax.plot(x, y, marker="o", color="C0", label="lead score")
    ax.plot([0, 100], [0, 100], linestyle="--", color="0.5", linewidth=1, label="random order")
    if rule_point is not None:
        ax.plot(100 * rule_point[0], 100 * rule_point[1], marker="D", color="C3", linestyle="",
                markersize=8, label="current MQL rule")  # fmt: skip
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 105)
    ax.set_xlabel("Leads sent, best scores first (% of leads)")
    ax.set_ylabel("Converted leads found (% of all converted)")
    ax.set_title(title or "Cumulative gain of the lead score")
    ax.legend(fontsize=8, loc="lower right")
    return fig


# --------------------------------------------------------------------------------------------
# Attribution figures (alignment.attribution results' frames)
# --------------------------------------------------------------------------------------------

MODEL_LABELS = {
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "linear": "Linear",
    "time_decay": "Time decay",
    "u_shaped": "U-shaped",
    "w_shaped": "W-shaped",
    "full_path": "Full path",
    "j_shaped": "J-shaped",
    "inverse_j": "Inverse J",
    "markov": "Markov",
    "shapley": "Shapley",
}


def plot_credit_by_channel(
    credit: pd.DataFrame,
    *,
    models: tuple[str, ...] | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Horizontal grouped bars: each channel's share of the credited conversions per model.

    ``credit`` is ``JourneyAttribution.summary()`` (``model, channel, share, share_low,
    share_high``); rows with an interval (Markov, Shapley with bootstrap draws) get error
    bars. Channels are ordered by the last model's share, largest on top; shares in percent.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    chosen = list(models) if models is not None else list(dict.fromkeys(credit["model"]))
    frame = credit[credit["model"].isin(chosen)].copy()
    frame["percent"] = 100 * frame["share"]
    frame["label"] = frame["model"].map(lambda m: MODEL_LABELS.get(m, str(m)))
    last = frame[frame["model"] == chosen[-1]].sort_values("share", ascending=False)
    order = [str(c) for c in last["channel"]]
    frame["channel"] = frame["channel"].astype(str)
    hue_order = [MODEL_LABELS.get(m, m) for m in chosen]
    height = max(3.5, 0.1 * len(order) * len(chosen) + 1.4)
    fig, ax = plt.subplots(figsize=(7.5, height))
    sns.barplot(frame, y="channel", x="percent", hue="label", order=order, hue_order=hue_order,
                orient="h", errorbar=None, ax=ax)  # fmt: skip
    bar_groups = list(ax.containers)  # one per model; error bars add containers
    for container, model in zip(bar_groups, chosen, strict=False):
        rows = frame[frame["model"] == model].set_index("channel").reindex(order)
        if rows["share_low"].isna().all():
            continue
        centres = [bar.get_y() + bar.get_height() / 2 for bar in container]
        low = np.maximum(100 * (rows["share"] - rows["share_low"]).to_numpy(), 0)
        high = np.maximum(100 * (rows["share_high"] - rows["share"]).to_numpy(), 0)
        ax.errorbar(100 * rows["share"].to_numpy(), centres, xerr=[low, high], fmt="none",
                    ecolor="0.15", elinewidth=1, capsize=2)  # fmt: skip
    ax.set_yticks(range(len(order)), [plain_label(c, max_chars=28) for c in order])
    ax.set_xlabel("Share of credited conversions (%); whiskers: 95 % bootstrap interval")
    ax.set_ylabel("Channel")
    ax.set_title(title or "Credit by channel under each attribution model")
    ax.legend(title="Model", fontsize=8, title_fontsize=8, loc="lower right")
    return fig


# --------------------------------------------------------------------------------------------
# Conversion-lift figures (alignment.lift results' frames)
# --------------------------------------------------------------------------------------------


def _clip_interval(low: Any, high: Any, limits: tuple[float, float]) -> tuple[Any, Any, Any, Any]:
    """Interval ends clipped to ``limits`` and flags of which ends were clipped."""
    import numpy as np

    lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    return np.maximum(lo, limits[0]), np.minimum(hi, limits[1]), lo < limits[0], hi > limits[1]


def plot_lift_forest(
    segments: pd.DataFrame, *, title: str | None = None, max_percent: float = 200.0
) -> matplotlib.figure.Figure:
    """Forest plot: relative lift (%) with its interval, overall and per segment, one panel
    per experiment.

    ``segments`` is ``ExperimentResult.segment_summary()`` of one or more experiments
    (``experiment_id, arm, by, segment, n, rel_lift, rel_ci_low, rel_ci_high,
    p_adjusted``). Arms are colours; the overall row comes first and is drawn larger.
    Interval ends beyond ``-100 %`` or ``max_percent`` are cut at the edge and marked with an
    arrow head.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    experiments = list(dict.fromkeys(segments["experiment_id"].astype(str)))
    rows_per = [
        segments[segments["experiment_id"].astype(str) == e][["by", "segment"]]
        .drop_duplicates().shape[0]
        for e in experiments
    ]  # fmt: skip
    height = max(3.0, 0.3 * sum(rows_per) + 1.0 * len(experiments) + 0.8)
    fig, axes = plt.subplots(len(experiments), 1, figsize=(7.5, height), squeeze=False,
                             height_ratios=[max(r, 1) + 1.5 for r in rows_per])  # fmt: skip
    arms = list(dict.fromkeys(segments["arm"].astype(str)))
    colours = dict(zip(arms, sns.color_palette(PALETTE, len(arms)), strict=True))
    lows = 100 * segments["rel_ci_low"].to_numpy(dtype=float)
    highs = 100 * segments["rel_ci_high"].to_numpy(dtype=float)
    limits = (
        max(-100.0, float(np.nanmin(lows)) if lows.size else -100.0),
        min(float(max_percent), float(np.nanmax(highs)) if highs.size else 100.0),
    )
    pad = 0.04 * (limits[1] - limits[0])
    for ax, experiment in zip(axes[:, 0], experiments, strict=True):
        part = segments[segments["experiment_id"].astype(str) == experiment]
        keys = list(
            dict.fromkeys(zip(part["by"].astype(str), part["segment"].astype(str), strict=True))
        )
        position = {key: i for i, key in enumerate(keys)}
        offsets = np.linspace(-0.15, 0.15, len(arms)) if len(arms) > 1 else [0.0]
        for offset, arm in zip(offsets, arms, strict=True):
            rows = part[part["arm"].astype(str) == arm]
            if rows.empty:
                continue
            keyed = zip(rows["by"], rows["segment"], strict=True)
            y = np.array([position[(b, s)] for b, s in keyed]) + offset
            x = 100 * rows["rel_lift"].to_numpy(dtype=float)
            lo, hi, cut_lo, cut_hi = _clip_interval(
                100 * rows["rel_ci_low"], 100 * rows["rel_ci_high"], limits
            )
            x_shown = np.clip(x, *limits)
            overall = (rows["by"] == "overall").to_numpy()
            spread = [np.maximum(x_shown - lo, 0), np.maximum(hi - x_shown, 0)]
            ax.errorbar(x_shown, y, xerr=spread, fmt="none", ecolor=colours[arm],
                        elinewidth=1.4, capsize=2)  # fmt: skip
            ax.scatter(x_shown[~overall], y[~overall], color=colours[arm], s=22, zorder=3,
                       label=f"arm {plain_label(arm)}")  # fmt: skip
            ax.scatter(x_shown[overall], y[overall], color=colours[arm], marker="D", s=46,
                       zorder=3, edgecolor="black")  # fmt: skip
            ax.scatter(lo[cut_lo], y[cut_lo], marker="<", color=colours[arm], s=26)
            ax.scatter(hi[cut_hi], y[cut_hi], marker=">", color=colours[arm], s=26)
        ax.axvline(0, color="0.3", linewidth=1)
        labels = [
            "Overall" if b == "overall" else f"{plain_label(b)}: {plain_label(s, max_chars=24)}"
            for b, s in keys
        ]
        ax.set_yticks(range(len(keys)), labels)
        for tick, (b, _s) in zip(ax.get_yticklabels(), keys, strict=True):
            if b == "overall":
                tick.set_fontweight("bold")
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.set_xlim(limits[0] - pad, limits[1] + pad)
        ax.set_ylabel("")
        ax.set_title(plain_label(experiment, max_chars=60), fontsize=10, loc="left")
        handles, names = ax.get_legend_handles_labels()
        if len(set(names)) > 1:
            unique = dict(zip(names, handles, strict=True))
            ax.legend(unique.values(), unique.keys(), fontsize=8, loc="lower right")
    axes[-1, 0].set_xlabel(
        "Relative lift over control (%); bars: 95 % CI per comparison; arrows: interval cut"
    )
    fig.suptitle(title or "Relative lift by segment", fontweight="bold")
    return fig


def plot_event_study(
    coefficients: pd.DataFrame,
    *,
    period: str = "month",
    did_estimate: float | None = None,
    binned: bool = True,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Event-study coefficients (percentage points) with 95 % intervals; pre-periods shaded.

    ``coefficients`` is ``EventStudyResult.summary()`` (index ``rel_period``; ``estimate,
    low, high``; the reference period -1 at 0 without interval). ``did_estimate`` (a
    fraction) draws the pooled difference-in-differences over the post periods. With
    ``binned`` the end points are labelled as bins of the periods beyond.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    frame = coefficients.sort_index()
    x = frame.index.to_numpy(dtype=float)
    y = 100 * frame["estimate"].to_numpy(dtype=float)
    low = 100 * frame["low"].to_numpy(dtype=float)
    high = 100 * frame["high"].to_numpy(dtype=float)
    has_ci = ~np.isnan(low)
    fig, ax = plt.subplots(figsize=(9.0, 4.2))
    ax.axvspan(x.min() - 0.5, -0.5, color="0.9", zorder=0, label="before the roll-out")
    ax.axhline(0, color="0.3", linewidth=1)
    ax.axvline(-0.5, color="C3", linestyle="--", linewidth=1.2)
    ax.errorbar(x[has_ci], y[has_ci], yerr=[y[has_ci] - low[has_ci], high[has_ci] - y[has_ci]],
                fmt="o", color="C0", capsize=3, label="coefficient, 95 % CI")  # fmt: skip
    ax.scatter(x[~has_ci], y[~has_ci], facecolor="white", edgecolor="C0", zorder=3, s=36,
               label="reference period (−1)")  # fmt: skip
    if did_estimate is not None:
        ax.hlines(100 * did_estimate, -0.5, x.max() + 0.5, colors="C2", linestyles=":",
                  linewidth=2, label="pooled DiD estimate")  # fmt: skip
    ticks = [int(v) for v in x]
    labels = [str(t) for t in ticks]
    if binned and len(ticks) > 2:
        labels[0], labels[-1] = f"≤{ticks[0]}", f"≥{ticks[-1]}"
    ax.set_xticks(ticks, labels)
    ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
    bottom, top = ax.get_ylim()
    ax.set_ylim(max(bottom, -100.0), min(top, 100.0))  # a change in a rate stays within ±100
    ax.set_xlabel(f"{period.capitalize()}s relative to the roll-out (0: first treated {period})")
    ax.set_ylabel("Effect on SAL→SQL conversion (points)")
    ax.set_title(title or "Event study of the roll-out")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, never over
    return fig


def plot_rollout_trends(
    panel: pd.DataFrame, *, title: str | None = None
) -> matplotlib.figure.Figure:
    """SAL→SQL conversion per period, roll-out regions against comparison regions.

    ``panel`` is ``RolloutResult.panel`` (``period_start, n_sal, n_sql, is_treated``,
    ``first_treated_period``, ``period``); each group's rate pools its regions' SALs. The
    dashed line marks the first treated period.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = {1: "roll-out regions", 0: "comparison regions"}
    grouped = (
        panel.assign(group=panel["is_treated"].map(names))
        .groupby(["group", "period_start"], as_index=False)[["n_sal", "n_sql"]]
        .sum()
    )
    grouped["percent"] = 100 * grouped["n_sql"] / grouped["n_sal"]
    fig, ax = plt.subplots()
    sns.lineplot(grouped, x="period_start", y="percent", hue="group", marker="o",
                 hue_order=["roll-out regions", "comparison regions"], ax=ax)  # fmt: skip
    first = panel.loc[panel["is_treated"] == 1, ["period", "first_treated_period", "period_start"]]
    starts = first.loc[first["period"] == first["first_treated_period"], "period_start"]
    for start in sorted(set(starts)):
        ax.axvline(start, color="C3", linestyle="--", linewidth=1.2)
    ax.set_xlabel("Cohort period (start)")
    ax.set_ylabel("SALs reaching SQL in the window (%)")
    ax.set_title(title or "SAL→SQL conversion, roll-out vs comparison regions")
    ax.legend(title="", fontsize=8)
    fig.autofmt_xdate()
    return fig
