"""Path building and funnel cohorts on DuckDB, on local Spark and in plain pandas.

A script, not a test. For each task and engine it starts a fresh worker process, which opens
the data and runs the task; the parent samples the resident memory of the worker's whole
process tree (the Spark JVM included) every 50 ms. It prints wall time, peak memory and the
ratios to DuckDB, checks that every engine returned the same rows as DuckDB, and writes
``benchmarks/results/engines.csv`` (git-ignored).

Tasks (the report's own row-level steps, for the report quarter):

- ``paths``: person journeys (conversion = first SQL, 90-day lookback, revenue linked through
  ``opportunity_people``) aggregated into distinct paths: :func:`alignment.journeys.
  build_journeys` + :func:`~alignment.journeys.aggregate_paths`, read from Parquet.
- ``cohorts``: MQL cohorts of the report quarter and the three before it, with SAL/SQL/won
  windows and censoring: :func:`alignment.funnel.build_stage_timeline` +
  :func:`~alignment.funnel.build_cohort_flags` + :func:`~alignment.funnel.aggregate_cohorts`.

Engines: ``duckdb`` (embedded, streams the Parquet files), ``spark`` (a local session,
``local[*]``, the same Ibis expressions; its start-up is timed apart), ``pandas`` (the same
logic written directly in pandas: :func:`pandas_paths`, :func:`pandas_cohorts`; it has to load
the columns it needs into memory first, which is part of its time).

Run it on the ``large`` demo (11.3 million touchpoints, about 25 s to generate)::

    .venv/bin/alignment demo --out /tmp/large --scale large
    .venv/bin/python benchmarks/engines.py --data /tmp/large

Options: ``--engines duckdb,spark,pandas --tasks paths,cohorts --quarter 2026Q3
--spark-memory 8g --repeat 1``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger("benchmarks.engines")
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("duckdb", "spark", "pandas")
TASKS = ("paths", "cohorts")
LOOKBACK_DAYS = 90
SEP = ">"
WHITESPACE = " \t\n\r\x0b\x0c"


# ------------------------------------------------------------------------------------------
# settings shared by every engine


def report_settings(quarter: str) -> dict[str, Any]:
    """Quarter bounds and funnel windows of ``params/<quarter>.yaml`` (or the 2026Q3 file)."""
    from alignment.params import Quarter, load_report_params

    params_file = ROOT / "params" / f"{quarter}.yaml"
    if not params_file.is_file():
        params_file = ROOT / "params" / "2026Q3.yaml"
    funnel = load_report_params(params_file).funnel
    q = Quarter.parse(quarter)
    quarters = [q.previous(i) for i in (3, 2, 1)] + [q]
    return {
        "quarter": quarter,
        "start_at": q.start_at,
        "end_at": q.end_at,
        "cohort_start_at": quarters[0].start_at,
        "sal_window_days": funnel.sal_window_days,
        "sql_window_days": funnel.sql_window_days,
        "won_window_days": funnel.won_window_days,
    }


def data_end(folder: Path) -> datetime:
    """The data's last stage event (the funnel's default ``as_of``), read with DuckDB."""
    from alignment import store

    data = store.open_data(folder)
    return data.execute(data.table("stage_events").entered_at.max()).to_pydatetime()


# ------------------------------------------------------------------------------------------
# Ibis expressions (DuckDB and Spark run exactly these)


def ibis_paths(data: Any, s: dict[str, Any]) -> Any:
    """Distinct paths of the quarter's person journeys, as the attribution notebook builds them."""
    from alignment import journeys as jr

    t = data.table
    touches = jr.touches_with_account(t("touchpoints"), t("people"))
    conversions = jr.conversion_events(
        t("stage_events"), t("opportunities"), event="SQL", unit="person",
        people=t("people"), opportunity_people=t("opportunity_people"),
    )  # fmt: skip
    built = jr.build_journeys(
        touches, conversions, start_at=s["start_at"], end_at=s["end_at"], unit="person",
        lookback_days=LOOKBACK_DAYS,
    )  # fmt: skip
    return jr.aggregate_paths(built, sep=SEP)


def ibis_cohorts(data: Any, s: dict[str, Any], as_of: datetime) -> Any:
    """Cohort counts per MQL quarter, as ``funnel.measure_cohort_conversion`` computes them."""
    from alignment import funnel
    from alignment.params import FunnelParams

    params = FunnelParams(
        sal_window_days=s["sal_window_days"], sql_window_days=s["sql_window_days"],
        won_window_days=s["won_window_days"],
    )  # fmt: skip
    flags = funnel.build_cohort_flags(
        funnel.build_stage_timeline(data.table("stage_events")), params=params, as_of=as_of,
        start_at=s["cohort_start_at"], end_at=s["end_at"],
    )  # fmt: skip
    return funnel.aggregate_cohorts(flags)


# ------------------------------------------------------------------------------------------
# plain pandas: the same logic, written directly


def _read(folder: Path, table: str, columns: list[str]) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{table}.parquet", columns=columns)


def _strip(values: pd.Series) -> pd.Series:
    return values.str.strip(WHITESPACE)


def pandas_conversions(folder: Path) -> pd.DataFrame:
    """``unit_id, converted_at, value``: each person's first SQL and the won revenue of the
    opportunities created at or after it (split equally among an opportunity's people)."""
    stages = _read(folder, "stage_events", ["person_id", "stage", "entered_at"])
    sql = stages.loc[_strip(stages["stage"]) == "SQL"]
    firsts = (
        sql.groupby("person_id", as_index=False)["entered_at"].min()
        .rename(columns={"person_id": "unit_id", "entered_at": "converted_at"})
        .dropna(subset=["converted_at"])
    )  # fmt: skip
    opps = _read(folder, "opportunities", ["opp_id", "created_at", "is_won", "amount"])
    won = opps.loc[opps["is_won"].fillna(False).astype(bool)]
    won = won.assign(amount=won["amount"].fillna(0.0))
    members = _read(folder, "opportunity_people", ["opp_id", "person_id"]).drop_duplicates()
    sizes = members.groupby("opp_id").size().rename("n_people").reset_index()
    revenue = won.merge(members, on="opp_id").merge(sizes, on="opp_id")
    revenue = pd.DataFrame(
        {
            "unit_id": revenue["person_id"],
            "won_created_at": revenue["created_at"],
            "won_amount": revenue["amount"] / revenue["n_people"],
        }
    )
    joined = firsts.merge(revenue, on="unit_id")
    value = (
        joined.loc[joined["won_created_at"] >= joined["converted_at"]]
        .groupby("unit_id")["won_amount"].sum().rename("value")
    )  # fmt: skip
    out = firsts.merge(value, left_on="unit_id", right_index=True, how="left")
    return out.assign(value=out["value"].fillna(0.0).astype("float64"))


def pandas_paths(folder: Path, s: dict[str, Any]) -> pd.DataFrame:
    """:func:`ibis_paths` in pandas: ``path, conversions, nulls, value``."""
    start, end = pd.Timestamp(s["start_at"]), pd.Timestamp(s["end_at"])
    conversions = pandas_conversions(folder)
    touches = _read(folder, "touchpoints", ["touch_id", "person_id", "ts", "channel"])
    steps = pd.DataFrame(
        {
            "unit_id": touches["person_id"],
            "touch_id": touches["touch_id"],
            "ts": touches["ts"],
            "channel": _strip(touches["channel"]).fillna("(none)"),
        }
    ).dropna(subset=["unit_id"])
    del touches
    in_window = conversions.loc[
        (conversions["converted_at"] >= start) & (conversions["converted_at"] < end)
    ]
    converting = pd.DataFrame(
        {
            "unit_id": in_window["unit_id"],
            "is_converted": True,
            "reference_at": in_window["converted_at"],
            "value": in_window["value"],
        }
    )
    converted_before_end = conversions.loc[conversions["converted_at"] < end, "unit_id"]
    touched = steps.loc[(steps["ts"] >= start) & (steps["ts"] < end)]
    touched = touched.loc[~touched["unit_id"].isin(converted_before_end)]
    nulls = touched.groupby("unit_id", as_index=False)["ts"].max()
    nulls = pd.DataFrame(
        {"unit_id": nulls["unit_id"], "is_converted": False, "reference_at": nulls["ts"],
         "value": 0.0}
    )  # fmt: skip
    references = pd.concat([converting, nulls], ignore_index=True)
    in_path = steps.merge(references, on="unit_id")
    lookback = pd.Timedelta(days=LOOKBACK_DAYS)
    in_path = in_path.loc[
        (in_path["ts"] <= in_path["reference_at"])
        & (in_path["ts"] >= in_path["reference_at"] - lookback)
    ]
    in_path = in_path.assign(channel=in_path["channel"].str.replace(SEP, "_", regex=False))
    in_path = in_path.sort_values(["unit_id", "ts", "touch_id"])
    per_journey = in_path.groupby(["unit_id", "is_converted"], as_index=False, sort=False).agg(
        path=("channel", SEP.join), value=("value", "max")
    )
    per_journey = per_journey.assign(
        conversions=per_journey["is_converted"].astype("int64"),
        nulls=(~per_journey["is_converted"]).astype("int64"),
    )
    out = per_journey.groupby("path", as_index=False).agg(
        conversions=("conversions", "sum"), nulls=("nulls", "sum"), value=("value", "sum")
    )
    return out.sort_values(
        ["conversions", "nulls", "path"], ascending=[False, False, True], ignore_index=True
    )


def pandas_cohorts(folder: Path, s: dict[str, Any], as_of: datetime) -> pd.DataFrame:
    """:func:`ibis_cohorts` in pandas: counts per MQL quarter."""
    from alignment.funnel import FUNNEL_STAGES, STAGES

    events = _read(folder, "stage_events", ["person_id", "stage", "entered_at"])
    events = events.assign(stage=_strip(events["stage"]))
    events = events.dropna(subset=["person_id", "entered_at"])
    events = events.loc[events["stage"].isin(STAGES)]
    firsts = events.groupby(["person_id", "stage"])["entered_at"].min().unstack("stage")

    def first(*stages: str) -> pd.Series:
        present = [st for st in stages if st in firsts.columns]
        if not present:
            return pd.Series(pd.NaT, index=firsts.index, dtype=events["entered_at"].dtype)
        return firsts[present].min(axis=1)

    cut = pd.Timestamp(as_of)
    timeline = pd.DataFrame(
        {
            "mql_at": first("MQL"),
            "sal_reached_at": first(*FUNNEL_STAGES[2:]),
            "sql_reached_at": first(*FUNNEL_STAGES[3:]),
            "customer_reached_at": first("Customer"),
            "disqualified_at": first("Disqualified"),
            "recycled_at": first("Recycled"),
        }
    )
    mql = timeline["mql_at"]
    cohort = timeline.loc[
        mql.notna() & (mql <= cut) & (mql >= pd.Timestamp(s["cohort_start_at"]))
        & (mql < pd.Timestamp(s["end_at"]))
    ]  # fmt: skip
    mql = cohort["mql_at"]
    flags = pd.DataFrame({"quarter": mql.dt.year.astype(str) + "Q" + mql.dt.quarter.astype(str)})
    windows = {
        "sal": ("sal_reached_at", s["sal_window_days"]),
        "sql": ("sql_reached_at", s["sql_window_days"]),
        "won": ("customer_reached_at", s["won_window_days"]),
    }
    for name, (column, days) in windows.items():
        deadline = mql + pd.Timedelta(days=days)
        reached = cohort[column]
        in_window = reached.notna() & (reached <= deadline) & (reached <= cut)
        flags[f"is_{name}_in_window"] = in_window
        flags[f"is_{name}_open"] = ~in_window & (deadline > cut)
    accepted = cohort["sal_reached_at"].notna() & (cohort["sal_reached_at"] <= cut)

    def after_mql(column: str) -> pd.Series:
        values = cohort[column]
        return values.notna() & (values >= mql) & (values <= cut)

    flags["is_accepted"] = accepted
    flags["is_rejected"] = ~accepted & (after_mql("disqualified_at") | after_mql("recycled_at"))
    counts = flags.groupby("quarter").agg(
        n_mql=("is_accepted", "size"),
        **{
            f"n_{name}{suffix}": (f"is_{name}_{kind}", "sum")
            for name in windows
            for suffix, kind in (("", "in_window"), ("_open", "open"))
        },
        n_accepted=("is_accepted", "sum"),
        n_rejected=("is_rejected", "sum"),
    )
    return counts.reset_index().astype({c: "int64" for c in counts.columns})


# ------------------------------------------------------------------------------------------
# worker: one engine, one task, in its own process


def run_worker(args: argparse.Namespace) -> None:
    """Run one task on one engine; print one JSON line (timings, rows) and save the result."""
    from alignment import store

    folder = Path(args.data)
    settings = report_settings(args.quarter)
    as_of = datetime.fromisoformat(args.as_of)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if args.worker == "pandas":
        run: Callable[[], pd.DataFrame] = (
            (lambda: pandas_paths(folder, settings))
            if args.task == "paths"
            else (lambda: pandas_cohorts(folder, settings, as_of))
        )
    else:
        session = None
        if args.worker == "spark":
            t0 = time.perf_counter()
            session = store.spark_session(driver_memory=args.spark_memory)
            session.range(1).count()  # the JVM and executors are up
            timings["startup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = store.open_data(folder, engine=args.worker, spark=session)
        timings["open_s"] = time.perf_counter() - t0
        expr = ibis_paths(data, settings) if args.task == "paths" else ibis_cohorts(
            data, settings, as_of
        )

        def run() -> pd.DataFrame:
            return data.execute(expr)

    best, result = float("inf"), None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    timings["run_s"] = best
    timings["seconds"] = timings.get("open_s", 0.0) + best
    timings["worker_s"] = time.perf_counter() - started
    result.to_parquet(args.out)
    print(json.dumps({**timings, "rows_out": len(result)}), flush=True)


# ------------------------------------------------------------------------------------------
# parent: start workers, sample memory, compare, report


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def _proc_tree_rss(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        try:
            total += int((Path("/proc") / str(current) / "statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(current, []))
    return total


def run_measured(cmd: list[str]) -> tuple[dict[str, Any], float, float]:
    """Run ``cmd``; return its JSON line, its wall time and the peak RSS of its tree (bytes)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[-6:])} failed:\n{tail}")
    line = [ln for ln in stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line), wall, float(peak)


def same_rows(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Same rows and values (floats to 1e-9 relative), whatever the row order and dtypes."""

    def norm(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for name in out.columns:
            if pd.api.types.is_numeric_dtype(out[name]) and not pd.api.types.is_bool_dtype(
                out[name]
            ):
                out[name] = out[name].astype("float64")
            else:
                out[name] = out[name].astype(str)
        return out.sort_values(list(out.columns), ignore_index=True)

    try:
        pd.testing.assert_frame_equal(norm(left), norm(right), rtol=1e-9, check_dtype=False)
    except AssertionError as exc:
        log.warning("results differ: %s", str(exc).splitlines()[0:3])
        return False
    return True


def machine() -> str:
    """Cores, memory and OS of this machine, for the results table."""
    mem = ""
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = f"{pages / 2**30:.0f} GiB"
    return f"{os.cpu_count()} cores, {mem}, {platform.system()} {platform.machine()}"


def versions() -> str:
    names = ("duckdb", "ibis-framework", "pyspark", "pandas", "pyarrow")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "large"))
    parser.add_argument("--quarter", default="2026Q3")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--spark-memory", default="8g")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=TASKS, help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.worker:
        logging.getLogger().setLevel(logging.WARNING)
        run_worker(args)
        return
    folder = Path(args.data)
    if not (folder / "touchpoints.parquet").is_file():
        parser.error(f"{folder} holds no touchpoints.parquet; run "
                     f"`alignment demo --out {folder} --scale large` first")  # fmt: skip
    import pyarrow.parquet as pq

    n_touches = pq.ParquetFile(folder / "touchpoints.parquet").metadata.num_rows
    n_stages = pq.ParquetFile(folder / "stage_events.parquet").metadata.num_rows
    as_of = data_end(folder)
    log.info("%s: %d touchpoints, %d stage events; %s; %s", folder, n_touches, n_stages,
             machine(), versions())  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="engines-bench-") as tmp:
        for task in args.tasks.split(","):
            reference = None
            for engine in args.engines.split(","):
                out = Path(tmp) / f"{task}-{engine}.parquet"
                cmd = [
                    sys.executable, __file__, "--data", str(folder), "--quarter", args.quarter,
                    "--repeat", str(args.repeat), "--spark-memory", args.spark_memory,
                    "--worker", engine, "--task", task, "--as-of", as_of.isoformat(),
                    "--out", str(out),
                ]  # fmt: skip
                log.info("%s on %s ...", task, engine)
                timings, wall, peak = run_measured(cmd)
                result = pd.read_parquet(out)
                if engine == "duckdb":
                    reference = result
                rows.append(
                    {
                        "task": task,
                        "engine": engine,
                        "input_rows": n_touches if task == "paths" else n_stages,
                        "seconds": timings["seconds"],
                        "run_s": timings["run_s"],
                        "open_s": timings.get("open_s"),
                        "startup_s": timings.get("startup_s"),
                        "process_s": wall,
                        "peak_rss_gib": peak / 2**30,
                        "rows_out": timings["rows_out"],
                        "same_as_duckdb": None if reference is None else same_rows(
                            result, reference
                        ),
                    }
                )
                log.info("  %.2f s (process %.1f s), peak RSS %.2f GiB", timings["seconds"],
                         wall, peak / 2**30)  # fmt: skip
    table = pd.DataFrame(rows)
    duck = table.loc[table["engine"] == "duckdb"].set_index("task")
    table["ratio_vs_duckdb"] = table["seconds"] / table["task"].map(duck["seconds"])
    table["machine"], table["versions"] = machine(), versions()
    table["measured_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "engines.csv"
    table.to_csv(path, index=False)
    shown = table.drop(columns=["machine", "versions", "measured_at"])
    log.info("\n%s\nwritten to %s", shown.to_string(index=False, float_format="%.2f"), path)
    report_targets(table)


def report_targets(table: pd.DataFrame) -> None:
    """Say whether the issue's targets are met on this machine (DuckDB path building)."""
    cell = table.set_index(["task", "engine"])
    if ("paths", "duckdb") not in cell.index:
        return
    duck = cell.loc[("paths", "duckdb")]
    checks = [
        ("DuckDB path building under 15 s", duck["seconds"] < 15, f"{duck['seconds']:.1f} s"),
        ("DuckDB peak memory under 8 GiB", duck["peak_rss_gib"] < 8,
         f"{duck['peak_rss_gib']:.2f} GiB"),
    ]  # fmt: skip
    if ("paths", "pandas") in cell.index:
        ratio = cell.loc[("paths", "pandas"), "seconds"] / duck["seconds"]
        checks.append(("DuckDB at least 5x faster than pandas", ratio >= 5, f"{ratio:.1f}x"))
    for name, ok, value in checks:
        log.info("%s: %s (%s)", name, "met" if ok else "NOT met", value)


if __name__ == "__main__":
    main()
