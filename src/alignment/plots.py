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
    >>> neutralise_formula('=HYPERLINK("http://x")'), neutralise_formula(-3), neutralise_formula("ok")
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
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else f"{100 * v:.1f} %")
        elif column in money:
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else f"{v:,.0f}")
        elif pd.api.types.is_bool_dtype(values):
            shown[column] = values.map(lambda v: "yes" if v else "no")
        elif pd.api.types.is_integer_dtype(values):
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else f"{int(v):,}")
        elif pd.api.types.is_float_dtype(values):
            places = decimals.get(column, 2)
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else f"{v:,.{places}f}")
        elif pd.api.types.is_datetime64_any_dtype(values):
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else v.strftime("%Y-%m-%d"))
        else:
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else escape_markdown(v))
    shown.columns = [escape_markdown(str(c).replace("_", " ")) for c in frame.columns]
    return shown


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
