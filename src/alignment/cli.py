"""The ``alignment`` command line (DESIGN.md, "Command line"; stable: tests and users rely on it).

Conventions for every command:

- machine-readable output (CSV, JSON) goes to stdout or ``--out``, floats at full precision;
- progress and warnings go to stderr;
- a user error is one clear line on stderr and exit code 1; a usage error (unknown option,
  bad choice) is exit code 2, as Click reports it.

Heavy modules (pandas, ibis, statsmodels) are imported inside the commands that need them,
so ``alignment --help`` and the light commands start fast (PITFALLS.md, "CLI start-up").
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="alignment",
    help="Sales-marketing alignment analytics: demo data, validation, studies and the report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True, highlight=False)
log = logging.getLogger(__name__)


class UserError(Exception):
    """An error the user can fix (bad file, bad argument); shown as one line, exit code 1."""


def fail(message: str) -> NoReturn:
    """Print ``message`` as one line on stderr and exit with code 1."""
    from rich.markup import escape  # "[spark]" in a message is text, not a style tag

    stderr.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, emoji=False)
    raise typer.Exit(1)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the package's user-facing exceptions into one line on stderr and exit code 1.

    ``DataError`` (a broken rule of the data contract), ``ValueError`` (a bad argument),
    ``FileNotFoundError``/``PermissionError``/``IsADirectoryError`` and ``UserError`` are the
    user's to fix; anything else is a bug and keeps its traceback.
    """
    try:
        yield
    except (UserError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        fail(_one_line(exc))


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"no such file or folder: {exc.filename}"
    return " ".join(text.split())


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_time=False, show_path=False)],
    )


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress details.")
    ] = False,
) -> None:
    """Sales-marketing alignment analytics."""
    _setup_logging(verbose)


def write_json(payload: dict[str, Any], out: Path | None) -> None:
    """Write ``payload`` as JSON to ``out`` (atomically) or stdout; floats round-trip (repr).

    NaN and infinities, which JSON cannot hold, are written as ``null``.
    """
    text = json.dumps(_json_safe(payload), indent=2) + "\n"
    write_text(text, out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text(text: str, out: Path | None) -> None:
    """Write ``text`` to stdout, or to ``out`` through a temporary file renamed into place."""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from exc


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


class Scale(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the demo tables into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 7,
    scale: Annotated[
        Scale, typer.Option(help="small (seconds), medium, large (10M+ touches).")
    ] = (Scale.small),
) -> None:
    """Generate the synthetic B2B demo dataset and its ground_truth.json."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from alignment import demo as demo_module

    with (
        user_errors(),
        Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=stderr
        ) as progress,
    ):
        task = progress.add_task(f"demo ({scale.value}, seed {seed})", total=1.0)

        def report(step: str, fraction: float) -> None:
            progress.update(task, completed=fraction, description=f"demo: {step}")

        summary = demo_module.generate_demo(out, seed=seed, scale=scale.value, progress=report)
        progress.update(task, completed=1.0, description="demo: done")
    rows = ", ".join(f"{name} {n:,}" for name, n in summary.rows.items())
    stderr.print(f"wrote {summary.out_dir} in {summary.seconds:.1f} s: {rows}", soft_wrap=True)


LARGE_DATA_BYTES = 64 * 2**20
"""Data this big (64 MiB of table files) take long enough to check that ``validate`` shows
progress even when stderr is not a terminal (a log file, CI)."""


def _data_bytes(data: Path) -> int:
    """Size of a data file, or of the files directly inside a data folder, in bytes."""
    try:
        if data.is_file():
            return data.stat().st_size
        return sum(p.stat().st_size for p in data.iterdir() if p.is_file())
    except OSError:
        return 0


@contextlib.contextmanager
def _validation_progress(data: Path) -> Iterator[Any]:
    """The ``progress(step, state)`` callback of ``validate``, or None when it stays quiet.

    On a terminal: a rich spinner per table with its elapsed time. Not on a terminal, for data
    of at least :data:`LARGE_DATA_BYTES`: one line per finished step, so a log shows how far a
    long check got. Small data off a terminal: nothing (scripts see only the report).
    """
    if stderr.is_terminal:
        from rich.markup import escape
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=stderr, transient=True,
        ) as bar:  # fmt: skip
            tasks: dict[str, Any] = {}

            def live(step: str, state: str) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(f"checking {escape(step)} …", total=1)
                if state == "done":
                    done = f"{escape(step)} [green]done[/]"
                    bar.update(tasks[step], description=done, completed=1)

            yield live
    elif _data_bytes(data) >= LARGE_DATA_BYTES:
        started: dict[str, float] = {}

        def lines(step: str, state: str) -> None:
            if state == "start":
                started[step] = time.perf_counter()
                return
            seconds = time.perf_counter() - started.pop(step, time.perf_counter())
            stderr.print(f"checked {step} in {seconds:.1f} s", markup=False, soft_wrap=True)

        yield lines
    else:
        yield None


@app.command()
def validate(
    data: Annotated[
        Path, typer.Argument(help="Folder of <table>.csv|.parquet, or a .duckdb file.")
    ],
) -> None:
    """Check DATA against the data contract: every problem listed, exit 1 if any rule is broken."""
    from alignment import schema

    with user_errors():
        if not data.exists():
            raise UserError(f"no such file or folder: {data}")
        with _validation_progress(data) as progress:
            report = schema.validate_folder(data, progress=progress)
    for warning in report.warnings:
        stderr.print(f"warning: {warning}", soft_wrap=True, markup=False)
    if not report.ok:
        for error in report.errors:
            stderr.print(f"error: {error}", soft_wrap=True, markup=False)
        stderr.print(f"{len(report.errors)} problem(s) in {data}", markup=False)
        raise typer.Exit(1)
    for line in report.summary_lines():
        sys.stdout.write(line + "\n")


def _parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    allowed = ("html", "pdf")
    if not formats or any(f not in allowed for f in formats):
        raise typer.BadParameter(f"choose from html, pdf (comma-separated); got {text!r}")
    return formats


def _default_quarter(data: Path) -> str:
    """The latest quarter that ended before the data's last stage event."""
    from alignment import store
    from alignment.params import Quarter

    opened = store.open_data(data)
    stages = opened.table("stage_events")
    last = opened.execute(stages.entered_at.max().name("last"))
    if last is None or last != last:
        raise UserError(f"{data}: stage_events is empty; pass --quarter")
    return str(Quarter.containing(last.to_pydatetime()).previous())


@app.command()
def report(
    quarter: Annotated[
        str | None, typer.Option(help="Quarter to report, YYYYQn (default: latest complete).")
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option("--params", help="Report params YAML (default: params/<QUARTER>.yaml)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Data folder or .duckdb file (default: from params)."),
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", help="Output formats, comma-separated: html,pdf.")
    ] = "html,pdf",
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="Where the row-level steps run: duckdb (embedded) or spark (local session, "
            "or SPARK_REMOTE; needs the spark extra and Java). Default: the params' engine."
        ),
    ] = None,
) -> None:
    """Validate the data, run every study notebook, render HTML + PDF of the report.

    The rendered files go into reports/_build/<QUARTER>/.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from alignment import pipeline, render
    from alignment.params import ParamsError, Quarter, load_report_params, project_root

    chosen_formats = _parse_formats(formats)
    with user_errors():
        if quarter is not None:
            Quarter.parse(quarter)
        if params is None:
            if quarter is None:
                quarter = _default_quarter(data or project_root() / "data" / "demo")
            params = project_root() / "params" / f"{quarter}.yaml"
            if not params.is_file():
                raise UserError(
                    f"no params file {params}; copy params/2026Q3.yaml to it or pass --params"
                )
        try:
            loaded = load_report_params(params)
        except ParamsError as exc:
            raise UserError(str(exc)) from None
        if quarter is not None and quarter != loaded.quarter:
            loaded = loaded.model_copy(update={"quarter": quarter})
        if engine is not None:
            loaded = loaded.model_copy(update={"engine": engine.value})
        pipeline.check_engine(loaded.engine)  # before any progress output
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=stderr
        ) as bar:
            tasks: dict[str, Any] = {}

            def progress(step: str, state: str) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(step, total=1)
                mark = {"start": "…", "done": "[green]done[/]", "failed": "[red]failed[/]"}[state]
                bar.update(tasks[step], description=f"{step} {mark}", completed=state != "start")

            try:
                result = pipeline.build_report(
                    loaded, params_file=params, data_dir=data, formats=chosen_formats,
                    progress=progress,
                )  # fmt: skip
            except (pipeline.StudyFailed, pipeline.ReportInputError, render.RenderError) as exc:
                # a failed notebook, bad inputs, or a renderer failure (typst, quarto): one
                # line; the previous report is untouched and the failed build is kept
                raise UserError(str(exc)) from None
    for fmt, path in result.outputs.items():
        sys.stdout.write(f"{fmt}: {path}\n")
    total = sum(v for k, v in result.timings.items() if not k.startswith("study:"))
    stderr.print(f"report {loaded.quarter} built in {total:.1f} s ({result.renderer} renderer)")


@app.command()
def run(
    params_file: Annotated[Path, typer.Argument(help="Study params YAML: notebook + parameters.")],
) -> None:
    """Run one study notebook with the parameters of PARAMS.yaml (Papermill)."""
    from alignment import pipeline
    from alignment.params import ParamsError, load_study_params, project_root

    with user_errors():
        try:
            study = load_study_params(params_file)
        except ParamsError as exc:
            raise UserError(str(exc)) from None
        out_dir = Path(
            study.output or project_root() / "reports" / "_build" / "studies" / study.notebook
        )
        stderr.print(f"running {study.notebook} …")
        try:
            done = pipeline.run_single_study(study.notebook, study.notebook_parameters(), out_dir)
        except (pipeline.StudyFailed, pipeline.ReportInputError) as exc:
            raise UserError(str(exc)) from None
    sys.stdout.write(f"{done.executed}\n")
    stderr.print(f"{study.notebook} ran in {done.seconds:.1f} s")


# --------------------------------------------------------------------------------------------
# lift, did, power: experiment statistics (alignment.lift)


class LiftFormat(StrEnum):
    json = "json"
    table = "table"


class DidCovType(StrEnum):
    nonrobust = "nonrobust"
    HC1 = "HC1"
    cluster = "cluster"


def _read_unit_table(file: Path, text_columns: tuple[str, ...] = ()) -> Any:
    """Read a CSV or Parquet file (one row per unit); ``text_columns`` are read as text.

    Arm labels are compared as text, so ``--control 0`` matches a column of integers.
    """
    import pandas as pd

    if not file.exists():
        raise UserError(f"no such file: {file}")
    if file.is_dir():
        raise UserError(f"{file} is a folder; expected a .csv or .parquet file")
    suffix = file.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(file, dtype={column: str for column in text_columns})
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(file)
        else:
            got = suffix or "no suffix"
            raise UserError(f"{file}: expected a .csv or .parquet file, got {got}")
    except (ValueError, OSError, ImportError) as exc:
        raise UserError(f"cannot read {file}: {_one_line(exc)}") from None
    for column in text_columns:
        if column in frame.columns:
            frame[column] = [v if pd.isna(v) else str(v) for v in frame[column]]
    return frame


@app.command("lift")
def lift_command(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file, one row per unit.")],
    arm_col: Annotated[str, typer.Option("--arm-col", help="Column holding each unit's arm.")],
    outcome_col: Annotated[
        str, typer.Option("--outcome-col", help="Outcome column: 0/1 conversions or numbers.")
    ],
    control: Annotated[str, typer.Option("--control", help="Control arm label.")],
    treatment: Annotated[str, typer.Option("--treatment", help="Treatment arm label.")],
    covariate: Annotated[
        str | None, typer.Option("--covariate", help="Pre-period covariate column for CUPED.")
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="1 - confidence level.")] = 0.05,
    output_format: Annotated[
        LiftFormat, typer.Option("--format", help="json (stdout, full precision) or table.")
    ] = LiftFormat.json,
) -> None:
    """Conversion lift of TREATMENT over CONTROL: Wald absolute and delta-method relative CIs."""
    from alignment import lift as lift_module

    with user_errors():
        frame = _read_unit_table(file, text_columns=(arm_col,))
        try:
            result = lift_module.estimate_lift_frame(
                frame, arm_col, outcome_col, control, treatment, covariate=covariate, alpha=alpha
            )
        except ValueError as exc:
            raise UserError(f"{file}: {_one_line(exc)}") from None
    if output_format is LiftFormat.json:
        write_json(result.to_dict(), None)
        return
    _print_lift_table(result, lift_module.describe_lift(result))


def _print_lift_table(result: Any, sentence: str) -> None:
    from rich.table import Table

    level = f"{100 * (1 - result.alpha):g} %"
    table = Table(title=f"Lift: {result.treatment_label} vs {result.control_label}")
    for name in ("quantity", "estimate", f"{level} low", f"{level} high", "p-value", "n"):
        table.add_column(name, justify="left" if name == "quantity" else "right")
    for quantity, row in result.summary().iterrows():
        cells = [row.estimate, row.low, row.high, row.p_value]
        table.add_row(
            str(quantity),
            *("" if v != v else f"{v:.4g}" for v in cells),  # NaN → blank
            f"{int(row.n):,}",
        )
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    console.print(table)
    console.print(sentence, markup=False)


@app.command("did")
def did_command(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file, one row per observation.")],
    outcome: Annotated[str, typer.Option("--outcome", help="Outcome column (numeric or 0/1).")],
    treated: Annotated[str, typer.Option("--treated", help="0/1 column: in the roll-out group.")],
    post: Annotated[str, typer.Option("--post", help="0/1 column: after the roll-out began.")],
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Column to cluster standard errors on.")
    ] = None,
    cov_type: Annotated[
        DidCovType | None,
        typer.Option("--cov-type", help="Default: cluster with --cluster, else nonrobust."),
    ] = None,
) -> None:
    """Difference-in-differences (treated x post interaction OLS) of a roll-out."""
    from alignment import lift as lift_module

    with user_errors():
        if cov_type is DidCovType.cluster and cluster is None:
            raise UserError("--cov-type cluster needs --cluster COLUMN (the column to cluster on)")
        if cluster is not None and cov_type not in (None, DidCovType.cluster):
            used = cov_type.value  # type: ignore[union-attr]
            raise UserError(f"--cluster is only used with --cov-type cluster, not {used}")
        frame = _read_unit_table(file)
        try:
            # inference="t": the command gives what its --cov-type names (DESIGN.md), the
            # statsmodels interval, whatever the number of clusters; the report's roll-out
            # analysis switches to the wild cluster bootstrap with few clusters instead
            result = lift_module.estimate_did(
                frame, outcome, treated, post, cluster=cluster,
                cov_type=None if cov_type is None else cov_type.value, inference="t",
            )  # fmt: skip
        except ValueError as exc:
            raise UserError(f"{file}: {_one_line(exc)}") from None
    write_json(result.to_dict(), None)


@app.command("power")
def power_command(
    baseline: Annotated[float, typer.Option("--baseline", help="Control conversion rate, 0-1.")],
    mde_rel: Annotated[
        float, typer.Option("--mde-rel", help="Relative lift to detect (0.2 means +20 %).")
    ],
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Power, 1 - beta.")] = 0.8,
    ratio: Annotated[
        float, typer.Option("--ratio", help="Treatment units per control unit.")
    ] = 1.0,
) -> None:
    """Units per arm to detect a relative lift in a conversion rate (two-proportion z test)."""
    from alignment import lift as lift_module

    with user_errors():
        result = lift_module.plan_sample_size(
            baseline, mde_rel, alpha=alpha, power=power, ratio=ratio
        )
    write_json(result.to_dict(), None)


# --------------------------------------------------------------------------------------------
# attribute: multi-touch attribution on aggregated paths (alignment.attribution)


class AttributionModel(StrEnum):
    first_touch = "first_touch"
    last_touch = "last_touch"
    linear = "linear"
    time_decay = "time_decay"
    u_shaped = "u_shaped"
    w_shaped = "w_shaped"
    full_path = "full_path"
    j_shaped = "j_shaped"
    inverse_j = "inverse_j"
    markov = "markov"
    shapley = "shapley"


class AttributeFormat(StrEnum):
    csv = "csv"
    json = "json"


def _read_path_table(file: Path, path_col: str) -> Any:
    """Read aggregated paths from .csv, .csv.gz or .parquet; the path column is read as text."""
    import pandas as pd

    if not file.exists():
        raise UserError(f"no such file: {file}")
    if file.is_dir():
        raise UserError(f"{file} is a folder; expected a .csv, .csv.gz or .parquet file")
    name = file.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(file, dtype={path_col: str}, keep_default_na=False, na_values=[""])
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(file)
    except (ValueError, OSError, ImportError, EOFError) as exc:
        raise UserError(f"cannot read {file}: {_one_line(exc)}") from None
    raise UserError(f"{file}: expected a .csv, .csv.gz or .parquet file")


def _neutralise_formulas(names: Any) -> list[str]:
    """Prefix a channel name starting with = + - @ with ' so spreadsheets show it as text."""
    return [f"'{n}" if str(n)[:1] in ("=", "+", "-", "@") else str(n) for n in names]


@app.command("attribute")
def attribute_command(
    file: Annotated[
        Path, typer.Argument(help="Aggregated paths: .csv, .csv.gz or .parquet, one row per path.")
    ],
    model: Annotated[AttributionModel, typer.Option("--model", help="Attribution model.")],
    order: Annotated[
        int, typer.Option("--order", min=1, help="Markov order k (states: last k channels).")
    ] = 1,
    path_col: Annotated[str, typer.Option("--path-col", help="Column of paths.")] = "path",
    sep: Annotated[str, typer.Option("--sep", help="Separator between channels.")] = ">",
    conv_col: Annotated[
        str, typer.Option("--conv-col", help="Column: converting journeys per path.")
    ] = "conversions",
    null_col: Annotated[
        str, typer.Option("--null-col", help="Column: non-converting journeys per path.")
    ] = "nulls",
    value_col: Annotated[
        str | None, typer.Option("--value-col", help="Column: revenue of the conversions.")
    ] = None,
    output_format: Annotated[
        AttributeFormat,
        typer.Option(
            "--format",
            help='csv, or json: {"channels": [{channel, conversions, [value,] share}, ...]}.',
        ),
    ] = AttributeFormat.csv,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Credit conversions (and value) of aggregated paths to channels.

    Writes one row per channel: channel, conversions[, value], share (share of the
    conversions, 0-1). Floats are written at full precision. JSON output is an object with one
    key, "channels", holding a list of such rows.
    """
    from alignment import attribution

    with user_errors():
        frame = _read_path_table(file, path_col)
        try:
            paths = attribution.parse_paths(
                frame,
                path_col=path_col,
                sep=sep,
                conv_col=conv_col,
                null_col=null_col,
                value_col=value_col,
            )
            result = attribution.attribute(paths, model.value, order=order)
        except ValueError as exc:
            raise UserError(f"{file}: {_one_line(exc)}") from None
        table = result.to_frame()
        if output_format is AttributeFormat.json:
            write_json({"channels": table.to_dict(orient="records")}, out)
        else:
            table["channel"] = _neutralise_formulas(table["channel"])
            write_text(table.to_csv(index=False, lineterminator="\n"), out)


if __name__ == "__main__":  # pragma: no cover
    app()
