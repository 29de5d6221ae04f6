"""The row-level Ibis expressions give the same rows on Spark as on DuckDB.

One local SparkSession and one `small` demo (seed 7) serve the whole module; each case builds
one expression per engine from the same study function and compares the executed frames
(same rows, same values; rows sorted before comparing, timestamps to microseconds).
Reference: the DuckDB result of the same expression, which tests/test_journeys.py,
test_funnel.py, test_assets.py, test_scoring.py and test_lift_demo.py check against hand
counts and pandas references. Tolerance: floats to 1e-12
relative (Spark and DuckDB may sum in another order); everything else exact.

The module is skipped, with the reason, when pyspark is not installed (the `spark` extra) or
no Java is found; `make test` installs the extra, so CI runs it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install '.[spark]'")

import ibis  # noqa: E402
import ibis.expr.types as ir  # noqa: E402

from alignment import assets, attribution, funnel, lift, pipeline, scoring, store  # noqa: E402
from alignment import journeys as jr  # noqa: E402
from alignment.params import (  # noqa: E402
    AttributionParams,
    FunnelParams,
    Quarter,
    load_report_params,
)
from test_pipeline import FIXTURES, folder_digest, make_project  # noqa: E402

try:
    store.check_engine("spark")
except store.EngineUnavailable as exc:
    pytest.skip(str(exc), allow_module_level=True)

pytestmark = pytest.mark.spark

CORPUS = Path(__file__).parent / "data" / "bad"
QUARTER = Quarter.parse("2026Q3")
QUARTERS = [QUARTER.previous(3), QUARTER.previous(2), QUARTER.previous(1), QUARTER]
AS_OF = datetime(2026, 10, 15, tzinfo=UTC)
WINDOW = dict(start_at=QUARTER.start_at, end_at=QUARTER.end_at, lookback_days=90)


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from alignment.demo import generate_demo

    out = tmp_path_factory.mktemp("spark-demo") / "demo"
    generate_demo(out, seed=7, scale="small")
    return out


@pytest.fixture(scope="session")
def spark() -> Any:
    """The one local SparkSession of the test session (about 5 s to start)."""
    return store.spark_session(master="local[2]")


@pytest.fixture(scope="session")
def engines(demo_folder: Path, spark: Any) -> dict[str, store.Store]:
    return {
        "duckdb": store.open_data(demo_folder),
        "spark": store.open_data(demo_folder, engine="spark", spark=spark),
    }


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparable dtypes (Spark returns ns timestamps, DuckDB us), rows in a fixed order."""
    out = frame.reset_index(drop=True).copy()
    for name in out.columns:
        values = out[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[name] = values.dt.as_unit("us")
        elif pd.api.types.is_bool_dtype(values) or str(values.dtype) == "boolean":
            out[name] = values.astype("boolean")
        elif pd.api.types.is_integer_dtype(values):
            out[name] = values.astype("Int64")
        elif pd.api.types.is_float_dtype(values):
            out[name] = values.astype("float64")
        else:
            out[name] = values.astype(object).where(values.notna(), None)
    return out.sort_values(list(out.columns), ignore_index=True, na_position="last")


def assert_same_rows(on_spark: pd.DataFrame, on_duckdb: pd.DataFrame) -> None:
    assert len(on_duckdb) > 0, "the case selects no rows: it would prove nothing"
    pd.testing.assert_frame_equal(
        normalised(on_spark), normalised(on_duckdb), check_exact=False, rtol=1e-12, atol=0
    )


# ------------------------------------------------------------------------------------------
# cases: one expression builder per heavy row-level step


def _touches(data: store.Store) -> ir.Table:
    return jr.touches_with_account(data.table("touchpoints"), data.table("people"))


def _conversions(data: store.Store, **kwargs: Any) -> ir.Table:
    kwargs.setdefault("people", data.table("people"))
    return jr.conversion_events(data.table("stage_events"), data.table("opportunities"), **kwargs)


def _journeys(data: store.Store) -> ir.Table:
    return jr.build_journeys(_touches(data), _conversions(data), **WINDOW)


def _account_won_journeys(data: store.Store) -> ir.Table:
    conversions = _conversions(data, event="won", unit="account")
    return jr.build_journeys(_touches(data), conversions, unit="account", **WINDOW)


def _person_opportunity_conversions(data: store.Store) -> ir.Table:
    return _conversions(
        data, event="Opportunity", opportunity_people=data.table("opportunity_people")
    )


def _timeline(data: store.Store) -> ir.Table:
    return funnel.build_stage_timeline(data.table("stage_events"))


def _cohort_flags(data: store.Store) -> ir.Table:
    return funnel.build_cohort_flags(
        _timeline(data), params=FunnelParams(), as_of=AS_OF,
        start_at=QUARTERS[0].start_at, end_at=QUARTER.end_at,
    )  # fmt: skip


def _lead_facts(data: store.Store) -> ir.Table:
    t = data.table
    return funnel.build_lead_facts(
        t("stage_events"), t("touchpoints"), t("people"), t("accounts"), users=t("users")
    )


def _events(data: store.Store) -> ir.Table:
    return assets.prepare_asset_events(data.table("asset_events"), people=data.table("people"))


def _visits(data: store.Store) -> ir.Table:
    return assets.split_visits(assets.buyer_events(_events(data)), gap_minutes=10.0)


def _deals(data: store.Store) -> ir.Table:
    return assets.closed_deals(
        data.table("opportunities"), quarters=QUARTERS, accounts=data.table("accounts")
    )


def _experiment_units(data: store.Store, unit_type: str) -> ir.Table:
    """People of A/A-randomised users, accounts or regions (alternate arms by sorted id)."""
    table, column = {
        "user": ("users", "user_id"), "account": ("accounts", "account_id"),
        "region": ("accounts", "region"),
    }[unit_type]  # fmt: skip
    ids = sorted(set(data.execute(data.table(table)[column].cast("string")).dropna()))
    assignments = pd.DataFrame({
        "experiment_id": "aa", "unit_type": unit_type, "unit_id": ids,
        "arm": ["control", "treatment"] * (len(ids) // 2) + ["control"] * (len(ids) % 2),
        "assigned_at": pd.Timestamp("2026-01-05", tz="UTC"),
    })  # fmt: skip
    t = data.table
    return lift.build_experiment_units(
        ibis.memtable(assignments), t("stage_events"), t("opportunities"), t("people"),
        t("accounts"), experiment_id="aa", outcome="SQL", window_days=60, unit_type=unit_type,
        touchpoints=t("touchpoints"),
    )  # fmt: skip


CASES: dict[str, Callable[[store.Store], ir.Table]] = {
    # journeys
    "person_sql_conversions": lambda d: _conversions(d),
    "person_opportunity_conversions": _person_opportunity_conversions,
    "journey_touches": _journeys,
    "paths": lambda d: jr.aggregate_paths(_journeys(d)),
    "account_won_paths": lambda d: jr.aggregate_paths(_account_won_journeys(d)),
    "journey_counts": lambda d: jr.count_journeys(_touches(d), _conversions(d), **WINDOW),
    "channel_summary": lambda d: jr.summarise_channels(_journeys(d)),
    # funnel cohorts
    "stage_timeline": _timeline,
    "cohort_flags": _cohort_flags,
    "cohort_counts": lambda d: funnel.aggregate_cohorts(_cohort_flags(d)),
    "lead_facts": _lead_facts,
    "recycled_outcomes": lambda d: funnel.build_recycled_outcomes(d.table("stage_events")),
    "opportunity_sources": lambda d: funnel.build_opportunity_sources(
        d.table("opportunities"), d.table("touchpoints"), d.table("people")
    ),
    # asset aggregates
    "prepared_asset_events": _events,
    "visits": _visits,
    "visit_summaries": lambda d: assets.summarise_visits(_visits(d)),
    "share_engagement": lambda d: assets.share_engagement(_events(d), gap_minutes=10.0),
    "buyer_event_counts": lambda d: assets.buyer_event_counts(assets.buyer_events(_events(d))),
    "rep_asset_usage": lambda d: assets.rep_asset_usage(_events(d)),
    "asset_status": lambda d: assets.asset_status(
        assets.prepare_assets(d.table("assets")), _events(d), quarters=QUARTERS
    ),
    # lead-scoring features, as of each lead's MQL
    "lead_features": lambda d: scoring.build_lead_features(
        people=d.table("people"), accounts=d.table("accounts"),
        touchpoints=d.table("touchpoints"), stage_events=d.table("stage_events"),
        asset_events=d.table("asset_events"), channels=("email", "webinar", "sales_call"),
        touch_types=("email_open", "meeting"), observed_until=AS_OF,
    ),  # fmt: skip
    # experiment units of cluster-randomised designs (people of reps, accounts, regions)
    "experiment_units_user": lambda d: _experiment_units(d, "user"),
    "experiment_units_account": lambda d: _experiment_units(d, "account"),
    "experiment_units_region": lambda d: _experiment_units(d, "region"),
    "deal_asset_links": lambda d: assets.deal_asset_links(
        _events(d), _deals(d), opportunity_people=d.table("opportunity_people")
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_expression_gives_the_same_rows_on_spark_as_on_duckdb(
    engines: dict[str, store.Store], case: str
) -> None:
    build = CASES[case]
    on_spark = engines["spark"].execute(build(engines["spark"]))
    on_duckdb = engines["duckdb"].execute(build(engines["duckdb"]))
    assert_same_rows(on_spark, on_duckdb)


# ------------------------------------------------------------------------------------------
# whole measures: row-level on Spark, statistics locally on the aggregated frames


def test_cohort_conversion_summary_is_the_same_on_spark(engines: dict[str, store.Store]) -> None:
    on = {
        name: funnel.measure_cohort_conversion(
            data.table("stage_events"), QUARTERS, FunnelParams(), as_of=AS_OF
        ).summary()
        for name, data in engines.items()
    }
    assert_same_rows(on["spark"], on["duckdb"])


def test_attribution_credit_is_the_same_on_spark(engines: dict[str, store.Store]) -> None:
    # markov, shapley and the rule-based models run in pandas on the paths Spark aggregated
    params = AttributionParams(models=("last_touch", "linear", "time_decay", "markov"))
    on = {
        name: attribution.attribute_journeys(
            d.table("touchpoints"), d.table("stage_events"), d.table("opportunities"),
            d.table("people"), start_at=QUARTER.start_at, end_at=QUARTER.end_at,
            params=params, n_boot=0, opportunity_people=d.table("opportunity_people"),
        ).credit_table("conversions")
        for name, d in engines.items()
    }  # fmt: skip
    assert_same_rows(on["spark"], on["duckdb"])


def test_asset_usage_summary_is_the_same_on_spark(engines: dict[str, store.Store]) -> None:
    on = {
        name: assets.measure_asset_usage(
            d.table("assets"), d.table("asset_events"), quarters=QUARTERS, users=d.table("users")
        ).summary()
        for name, d in engines.items()
    }
    assert_same_rows(on["spark"], on["duckdb"])


# ------------------------------------------------------------------------------------------
# reading folders and portable text handling


@pytest.mark.parametrize("folder", ["good", "raw_email"])
def test_csv_folder_reads_with_contract_types_on_spark(spark: Any, folder: str) -> None:
    on_duckdb = store.open_data(CORPUS / folder)
    on_spark = store.open_data(CORPUS / folder, engine="spark", spark=spark)
    assert on_spark.tables == on_duckdb.tables
    for table in on_duckdb.tables:
        assert on_spark.table(table).schema() == on_duckdb.table(table).schema(), table
        if on_duckdb.table(table).count().execute():
            assert_same_rows(on_spark.table(table).to_pandas(), on_duckdb.table(table).to_pandas())


def test_strip_text_keeps_edge_letters_v_and_f_on_spark(spark: Any) -> None:
    # Reference: Python's str.strip over the same whitespace set. ibis's own strip() drops
    # the letters v and f on Spark ("forward" -> "orward"; PITFALLS.md).
    values = ["forward", " video\t", "\x0bfree\x0c", "a b", "\r\nx\n"]
    con = ibis.pyspark.connect(spark)
    table = ibis.memtable(pd.DataFrame({"text": values}))
    stripped = con.execute(table.select(text=store.strip_text(table.text)))["text"].tolist()
    assert stripped == [v.strip(" \t\n\r\x0b\x0c") for v in values]


# ------------------------------------------------------------------------------------------
# a Spark job failing mid-report


def test_spark_job_failing_mid_report_keeps_the_last_good_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path, {"funnel_sla": "completes"})
    monkeypatch.setenv("ALIGNMENT_PROJECT_ROOT", str(project))
    params_file = project / "params" / "2025Q1.yaml"
    params_file.write_text(
        yaml.safe_dump({**yaml.safe_load(params_file.read_text()), "engine": "spark"})
    )
    build = dict(params_file=params_file, formats=("html",), renderer="offline")
    good = pipeline.build_report(load_report_params(params_file), **build)
    before = folder_digest(good.out_dir)
    shutil.copy2(FIXTURES / "spark_job_fails.ipynb", project / "notebooks" / "funnel_sla.ipynb")
    with pytest.raises(pipeline.StudyFailed) as caught:
        pipeline.build_report(load_report_params(params_file), **build)
    assert caught.value.notebook == "funnel_sla"
    assert caught.value.cell == "tbl-touch-ids"
    assert "T001" in caught.value.evalue  # Spark's message names the value it could not cast
    assert folder_digest(good.out_dir) == before
    assert json.loads((good.out_dir / "manifest.json").read_text())["params"]["engine"] == "spark"
