"""alignment.summary: KPI sentences with quarter-over-quarter change."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from alignment import summary


def kpis(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["kpi", "quarter", "value", "unit", "source"])


@pytest.mark.parametrize(
    ("unit", "current", "previous", "expected"),
    [
        (
            "fraction",
            0.74,
            0.61,
            "SLA compliance rose from 61.0 % in 2026Q2 to 74.0 % (+13.0 pts).",
        ),
        (
            "fraction",
            0.50,
            0.55,
            "SLA compliance fell from 55.0 % in 2026Q2 to 50.0 % (-5.0 pts).",
        ),
        ("count", 120.0, 100.0, "SLA compliance rose from 100 in 2026Q2 to 120 (+20.0 %)."),
        ("USD", 2e6, 2e6, "SLA compliance was unchanged at USD 2,000,000."),
        # a change below the shown precision is no change to a reader (not "fell ... -0.0 pts")
        ("fraction", 0.4899, 0.4902, "SLA compliance was 49.0 %, as in 2026Q2."),
        (
            "hours",
            5.0,
            float("nan"),
            "SLA compliance was 5.0 hours (no earlier quarter to compare).",
        ),
    ],
)
def test_sentence_states_direction_and_change(unit, current, previous, expected) -> None:
    assert summary.describe_kpi("SLA compliance", unit, current, previous, "2026Q2") == expected


@pytest.mark.parametrize(
    ("current", "previous", "unit", "expected"),
    [
        (0.74, 0.61, "fraction", "+13.0 pts"),
        (0.4899, 0.4902, "fraction", "+0.0 pts"),  # rounds to zero: never "-0.0"
        (99.99, 100.0, "count", "+0.0 %"),
        (90.0, 100.0, "count", "-10.0 %"),
        (5.0, 0.0, "count", "new"),
    ],
)
def test_change_is_rounded_without_a_negative_zero(current, previous, unit, expected) -> None:
    assert summary.format_change(current, previous, unit) == expected


def test_headline_table_puts_headline_kpis_first_and_caps_them(tmp_path: Path) -> None:
    rows = [
        (f"k{i}", q, float(i), "count", f"nb#tbl-{i}")
        for i in range(9)
        for q in ("2026Q2", "2026Q3")
    ]
    frame = kpis(rows).assign(headline=lambda f: f.kpi != "k0")
    table = summary.headline_table(frame, "2026Q3", "2026Q2")
    assert table.kpi.tolist()[:2] == ["k1", "k2"] and table.kpi.tolist()[-1] == "k0"
    assert table.is_headline.sum() == summary.MAX_HEADLINES
    assert table.loc[0, "source"] == "nb#tbl-1"


def test_read_kpis_joins_every_study_table_and_names_bad_ones(tmp_path: Path) -> None:
    kpis([("MQLs", "2026Q3", 10, "count", "funnel_sla#tbl-kpis")]).to_csv(
        tmp_path / "kpis-funnel_sla.csv", index=False
    )
    assert summary.read_kpis(tmp_path).study.tolist() == ["funnel_sla"]
    pd.DataFrame({"kpi": ["x"]}).to_csv(tmp_path / "kpis-broken.csv", index=False)
    with pytest.raises(ValueError, match="kpis-broken.csv lacks the KPI columns quarter, value"):
        summary.read_kpis(tmp_path)


def test_no_kpi_tables_gives_an_empty_table(tmp_path: Path) -> None:
    table = summary.headline_table(summary.read_kpis(tmp_path), "2026Q3", "2026Q2")
    assert table.empty and summary.headline_sentences(table) == []


def test_kpis_not_marked_as_headlines_never_fill_the_headline_slots() -> None:
    rows = [
        (f"k{i}", q, float(i), "count", "nb#t") for i in range(4) for q in ("2026Q2", "2026Q3")
    ]
    frame = kpis(rows).assign(headline=lambda f: f.kpi.isin(["k1", "k3"]))
    table = summary.headline_table(frame, "2026Q3", "2026Q2")
    assert summary.headline_sentences(table) == [
        "k1 was unchanged at 1.",
        "k3 was unchanged at 3.",
    ]


def test_headline_slots_are_dealt_round_robin_over_studies_in_report_order() -> None:
    rows = [
        (f"{study}-{i}", "2026Q3", 1.0, "count", "nb#t", study)
        for study in ("asset_usage", "funnel_sla", "attribution")
        for i in range(5)
    ]
    frame = pd.DataFrame(rows, columns=["kpi", "quarter", "value", "unit", "source", "study"])
    table = summary.headline_table(frame, "2026Q3", "2026Q2")
    chosen = table.loc[table.is_headline, "kpi"].tolist()
    assert chosen == [
        "funnel_sla-0", "attribution-0", "asset_usage-0",
        "funnel_sla-1", "attribution-1", "asset_usage-1",
        "funnel_sla-2",
    ]  # fmt: skip


def test_display_kpis_formats_each_value_in_its_unit() -> None:
    frame = kpis(
        [
            ("Win rate", "2026Q2", 0.3, "fraction", "f#t"),
            ("Win rate", "2026Q3", 0.4, "fraction", "f#t"),
        ]
    )
    shown = summary.display_kpis(
        summary.headline_table(frame, "2026Q3", "2026Q2"), "2026Q3", "2026Q2"
    )
    assert shown.to_dict("records") == [
        {
            "kpi": "Win rate",
            "2026Q2": "30.0 %",
            "2026Q3": "40.0 %",
            "change": "+10.0 pts",
            "source": "f#t",
        }
    ]


def test_a_kpi_with_no_value_in_any_quarter_is_listed_without_a_sentence() -> None:
    frame = kpis([("Win rate", "2026Q2", float("nan"), "fraction", "f#t"),
                  ("Win rate", "2026Q3", float("nan"), "fraction", "f#t"),
                  ("MQLs", "2026Q3", 5.0, "count", "f#t")])  # fmt: skip
    table = summary.headline_table(frame, "2026Q3", "2026Q2")
    assert table.kpi.tolist() == ["MQLs", "Win rate"]
    assert summary.headline_sentences(table) == ["MQLs was 5 (no earlier quarter to compare)."]


@pytest.mark.parametrize(("n_kpis", "n_bullets"), [(3, 3), (5, 5), (9, summary.MAX_HEADLINES)])
def test_summary_bullets_are_capped_at_seven_and_a_short_summary_says_so(
    n_kpis: int, n_bullets: int
) -> None:
    rows = [(f"k{i}", "2026Q3", float(i), "count", "nb#t") for i in range(n_kpis)]
    table = summary.headline_table(kpis(rows), "2026Q3", "2026Q2")
    markdown = summary.as_bullets(summary.headline_sentences(table))
    bullets = [line for line in markdown.splitlines() if line.startswith("- ")]
    assert len(bullets) == n_bullets
    note = "*Only 3 headline KPIs had a value this quarter, fewer than the 5"
    assert (note in markdown) is (n_bullets < summary.MIN_HEADLINES)


def test_a_summary_with_no_headline_kpi_says_so() -> None:
    assert summary.as_bullets([]).startswith("*No headline KPI had a value this quarter")
    assert summary.as_bullets(["MQLs rose."]).startswith("- MQLs rose.\n\n*Only 1 headline KPI ")
