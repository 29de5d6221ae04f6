"""How the report shows numbers: `plots.format_table` on hand-picked values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alignment import plots


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        (0.615, "percent", "61.5 %"),
        (np.nan, "percent", "–"),
        (np.inf, "percent", "+∞"),  # an interval a 4-cluster bootstrap cannot bound
        (-np.inf, "percent", "−∞"),
        (1_234_567.4, "money", "1,234,567"),
        (-np.inf, "money", "−∞"),
        (1.23456, "float", "1.235"),
        (np.inf, "float", "+∞"),
        (None, "float", "–"),
    ],
    ids=lambda v: repr(v),
)
def test_numbers_are_shown_with_units_and_infinity_is_a_symbol(value, kind, shown) -> None:
    frame = pd.DataFrame({"v": pd.Series([value], dtype="float64")})
    options = {"percent": {"percent": ("v",)}, "money": {"money": ("v",)}}.get(kind, {})
    table = plots.format_table(frame, decimals={"v": 3}, **options)
    assert table["v"].tolist() == [shown]


def test_text_is_escaped_and_counts_get_separators() -> None:
    frame = pd.DataFrame({"title": ["*bold* <b>"], "n_deals": [12345]})
    table = plots.format_table(frame)
    assert table.columns.tolist() == ["title", "n deals"]
    assert table["n deals"].tolist() == ["12,345"]
    assert "*bold*" not in table["title"].iloc[0]
    assert "<b>" not in table["title"].iloc[0]
