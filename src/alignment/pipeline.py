"""Run a quarter's studies with Papermill, render the report and publish it atomically.

``build_report`` does, in order: check the params (every notebook exists, the quarter lies in
the data, the chosen engine can start) and validate the data, before anything runs; run the
study notebooks in parallel (2 workers: PITFALLS.md) with their parameters injected, each
reported as it finishes; run the executive summary; render HTML and PDF; write
``manifest.json``; then publish. Everything is built in a temporary folder beside the target
and renamed into ``reports/_build/<QUARTER>/`` only when every step succeeded, so a failed run
never replaces the last good report. A failed build is kept as
``reports/_build/<QUARTER>.failed/`` with its executed notebooks, for debugging; the
:class:`StudyFailed` raised names the failing notebook's path in that folder.

``pipeline`` runs notebooks and never imports them; notebooks import the study modules.

The ``engine`` of the params (``duckdb`` or ``spark``) is passed to every study notebook as
its ``engine`` parameter: the notebook opens the data with it (``store.open_data(data_dir,
engine=engine)``), so the row-level expressions run there and the statistics run locally on
their small aggregated results. A Spark job that fails mid-report fails its notebook like any
other error: the build stops and the last good report stays in place.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from alignment import render
from alignment.params import STUDIES, ReportParams, project_root
from alignment.render import cell_options

log = logging.getLogger(__name__)

SUMMARY_NOTEBOOK = "executive_summary"
"""Runs after the studies: reads their ``kpis-*`` tables and writes the headline sentences."""
KERNEL_NAME = "alignment"
VERSIONED_PACKAGES = (
    "alignment", "pandas", "numpy", "scipy", "statsmodels", "ibis-framework", "duckdb",
    "pandera", "papermill", "seaborn", "matplotlib", "pypandoc-binary", "typst", "pyarrow",
    "pyspark",
)  # fmt: skip

Progress = Callable[[str, str], None]
"""``progress(step, state)``: state is "start", "done" or "failed"."""


class StudyFailed(RuntimeError):
    """A study notebook raised: which notebook, which cell (label), which error."""

    def __init__(
        self, notebook: str, cell: str, ename: str, evalue: str, executed: str | None = None
    ) -> None:
        super().__init__(notebook, cell, ename, evalue, executed)
        self.notebook, self.cell, self.ename, self.evalue = notebook, cell, ename, evalue
        self.executed = executed  # path of the executed notebook kept for debugging

    def __str__(self) -> str:
        where = f" (executed notebook: {self.executed})" if self.executed else ""
        return f"{self.notebook} failed in cell {self.cell}: {self.ename}: {self.evalue}{where}"

    def moved(self, old_dir: Path, new_dir: Path | None) -> None:
        """Point :attr:`executed` into ``new_dir`` after ``old_dir`` was renamed to it.

        A build folder that failed is renamed (``.<QUARTER>.building-…`` to
        ``<QUARTER>.failed``), so the path recorded while the notebook ran no longer exists;
        ``new_dir`` None means the folder could not be kept, and no path is named.
        """
        if self.executed is None:
            return
        try:
            relative = Path(self.executed).relative_to(old_dir)
        except ValueError:
            return  # not inside the renamed folder: the path still holds
        self.executed = str(new_dir / relative) if new_dir is not None else None
        self.args = (self.notebook, self.cell, self.ename, self.evalue, self.executed)


class ReportInputError(ValueError):
    """The report cannot start: bad params, missing notebooks, or data that breaks the contract."""


@dataclass(frozen=True, slots=True)
class StudyRun:
    """One executed notebook."""

    name: str
    executed: Path
    seconds: float


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A published report: its folder, outputs, the studies run and step timings (seconds)."""

    out_dir: Path
    outputs: dict[str, Path]
    studies: tuple[StudyRun, ...]
    timings: dict[str, float] = field(default_factory=dict)
    renderer: str = "offline"


def notebooks_dir() -> Path:
    """The project's ``notebooks/`` folder."""
    return project_root() / "notebooks"


def notebook_path(name: str) -> Path:
    """``notebooks/<name>.ipynb``; raises :class:`ReportInputError` when it does not exist."""
    path = notebooks_dir() / f"{name}.ipynb"
    if not path.is_file():
        raise ReportInputError(f"study notebook {path} does not exist")
    return path


def use_project_kernel() -> str:
    """Register a kernel spec that runs this interpreter (the project's venv) and return its name.

    The spec lives in a temporary folder put first on ``JUPYTER_PATH``, so a user's own
    ``python3`` kernel (another environment) is never picked by mistake.
    """
    root = Path(tempfile.gettempdir()) / f"alignment-kernels-{os.getuid()}"
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.log_level=ERROR",  # not the TCP-without-encryption notice per study
        ],  # fmt: skip
        "display_name": "alignment (project venv)",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONHASHSEED": "0"},
    }
    # written beside and renamed into place: another process (a parallel test worker, a second
    # `alignment report`) may be reading the spec at this moment
    handle, partial = tempfile.mkstemp(dir=spec_dir, prefix=".kernel-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(json.dumps(spec))
    os.replace(partial, spec_dir / "kernel.json")
    paths = os.environ.get("JUPYTER_PATH", "")
    if str(root) not in paths.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), paths) if p)
    return KERNEL_NAME


def run_notebook(
    name: str, parameters: dict[str, Any], executed: Path, *, source: Path | None = None
) -> StudyRun:
    """Execute ``notebooks/<name>.ipynb`` with ``parameters`` into ``executed``.

    Raises :class:`StudyFailed` naming the failing cell by its ``#| label`` (else its index);
    the executed notebook, with the error, is still written.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = source or notebook_path(name)
    executed.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=parameters,
            kernel_name=use_project_kernel(),
            cwd=str(source.parent),
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as exc:
        label = cell_options(exc.source or "").get("label") or f"#{exc.cell_index}"
        raise StudyFailed(name, str(label), exc.ename, exc.evalue, str(executed)) from None
    return StudyRun(name, executed, time.perf_counter() - started)


def run_studies(
    names: Iterable[str],
    parameters: dict[str, Any],
    build_dir: Path,
    *,
    workers: int = 2,
    progress: Progress | None = None,
) -> tuple[StudyRun, ...]:
    """Run the named studies in parallel into ``build_dir/notebooks/``; stop at the first failure.

    Each study's "done" (or "failed") is reported as soon as it finishes, not when the batch
    does. At the first failure the studies not yet started are cancelled, the ones running are
    let finish (a kernel cannot be stopped cleanly mid-cell) and reported, and the first
    failure is raised.
    """
    names = list(names)
    runs: dict[str, StudyRun] = {}
    failed = threading.Event()  # set by the failing worker itself, before it takes more work

    def run_one(name: str) -> StudyRun:
        if failed.is_set():
            raise _NotStarted(name)
        if progress:
            progress(name, "start")
        try:
            return run_notebook(name, parameters, build_dir / "notebooks" / f"{name}.ipynb")
        except BaseException:
            failed.set()
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures: dict[Future[StudyRun], str] = {}
    reported: set[Future[StudyRun]] = set()

    def report(future: Future[StudyRun]) -> BaseException | None:
        error = future.exception()
        reported.add(future)
        if progress:
            progress(futures[future], "failed" if error else "done")
        return error

    try:
        futures.update({pool.submit(run_one, name): name for name in names})
        for future in as_completed(futures):
            if isinstance(future.exception(), _NotStarted):
                continue  # the failure that stopped it is raised when its turn comes
            error = report(future)
            if error is not None:
                raise error
            runs[futures[future]] = future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures.keys() - reported:  # ran alongside a failure: report how it ended
            if not future.cancelled() and not isinstance(future.exception(), _NotStarted):
                report(future)
    return tuple(runs[name] for name in names if name in runs)


class _NotStarted(Exception):
    """A study skipped because another one failed first (never reported, never raised)."""


def check_inputs(params: ReportParams, data_dir: Path) -> None:
    """Refuse to start when a notebook is missing or the data break the contract.

    Every problem is collected into one :class:`ReportInputError`; an engine that cannot
    start here (``spark`` without pyspark or Java) is refused first, with what to do.
    """
    from alignment import schema

    check_engine(params.engine)
    problems = []
    for name in (*params.studies, SUMMARY_NOTEBOOK):
        if not (notebooks_dir() / f"{name}.ipynb").is_file():
            problems.append(f"study notebook notebooks/{name}.ipynb does not exist")
    if not data_dir.exists():
        problems.append(f"data {data_dir} does not exist")
    elif params.engine == "spark" and not data_dir.is_dir():
        problems.append(f"engine spark reads a data folder; {data_dir} is not one")
    if problems:
        raise ReportInputError("; ".join(problems))
    report = schema.validate_folder(data_dir)
    if not report.ok:
        shown = "; ".join(str(e) for e in report.errors[:5])
        more = f" (and {len(report.errors) - 5} more)" if len(report.errors) > 5 else ""
        raise ReportInputError(
            f"{data_dir} breaks the data contract: {shown}{more}; run `alignment validate`"
        )
    _check_quarter_in_data(params, data_dir)


def check_engine(engine: str) -> None:
    """Raise :class:`ReportInputError` when ``engine`` cannot run here (one line: what to do)."""
    from alignment import store

    try:
        store.check_engine(engine)
    except store.EngineUnavailable as exc:
        raise ReportInputError(str(exc)) from None


def _check_quarter_in_data(params: ReportParams, data_dir: Path) -> None:
    from alignment import store

    quarter = params.report_quarter
    data = store.open_data(data_dir)
    stages = data.table("stage_events")
    first, last = (
        data.execute(stages.aggregate(first=stages.entered_at.min(), last=stages.entered_at.max()))
        .iloc[0]
        .tolist()
    )
    if first is None or last is None or first != first or last != last:  # empty or NaT
        raise ReportInputError(f"{data_dir}: stage_events is empty; no quarter can be reported")
    if quarter.end_at <= first.to_pydatetime() or quarter.start_at > last.to_pydatetime():
        raise ReportInputError(
            f"quarter {quarter} lies outside the data ({first:%Y-%m-%d} to {last:%Y-%m-%d})"
        )


def build_report(
    params: ReportParams,
    *,
    params_file: Path,
    data_dir: Path | None = None,
    out_root: Path | None = None,
    formats: tuple[str, ...] = render.FORMATS,
    renderer: str = "auto",
    workers: int = 2,
    progress: Progress | None = None,
) -> BuildResult:
    """Build and publish the quarter's report into ``<out_root>/<QUARTER>/`` (see module doc)."""
    timings: dict[str, float] = {}
    data_dir = Path(data_dir or params.data_path).resolve()
    out_root = Path(out_root or project_root() / "reports" / "_build").resolve()
    quarter = str(params.report_quarter)

    with _timed(timings, "validate", progress):
        check_inputs(params, data_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{quarter}.building-", dir=out_root))
    try:
        parameters = {
            "quarter": quarter,
            "data_dir": str(data_dir),
            "params_file": str(Path(params_file).resolve()),
            "output_dir": str(build_dir),
        }
        started = time.perf_counter()
        studies = run_studies(
            params.studies, {**parameters, "engine": params.engine}, build_dir,
            workers=workers, progress=progress,
        )  # fmt: skip
        timings["studies"] = time.perf_counter() - started
        timings.update({f"study:{run.name}": run.seconds for run in studies})
        with _timed(timings, SUMMARY_NOTEBOOK, progress):
            summary = run_notebook(
                SUMMARY_NOTEBOOK, parameters, build_dir / "notebooks" / f"{SUMMARY_NOTEBOOK}.ipynb"
            )
        qmd = _stage_sources(build_dir, {run.name for run in (*studies, summary)})
        with _timed(timings, "render", progress):
            rendered = render.render_report(
                qmd, build_dir, formats=formats, renderer=renderer, stem=f"alignment-{quarter}"
            )
        _remove_quarto_scratch(build_dir)
        manifest = _manifest(params, data_dir, (*studies, summary), timings, rendered.renderer)
        (build_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    except BaseException as exc:
        kept = _keep_failed(build_dir, out_root / f"{quarter}.failed")
        if isinstance(exc, StudyFailed):
            exc.moved(build_dir, kept)  # name the executed notebook where it now is
        raise
    final = out_root / quarter
    _publish(build_dir, final)
    outputs = {fmt: final / path.name for fmt, path in rendered.outputs.items()}
    return BuildResult(final, outputs, (*studies, summary), timings, rendered.renderer)


class _timed:
    """Context manager recording a step's seconds in ``timings`` and reporting progress."""

    def __init__(self, timings: dict[str, float], step: str, progress: Progress | None) -> None:
        self.timings, self.step, self.progress = timings, step, progress

    def __enter__(self) -> None:
        self.started = time.perf_counter()
        if self.progress:
            self.progress(self.step, "start")

    def __exit__(self, kind: type | None, *_: object) -> None:
        self.timings[self.step] = time.perf_counter() - self.started
        if self.progress:
            self.progress(self.step, "failed" if kind else "done")


def _stage_sources(build_dir: Path, ran: set[str]) -> Path:
    """Copy ``_quarto.yml`` and ``reports/*.qmd`` beside the executed notebooks; return the qmd.

    The build folder then has the project's layout (``reports/quarterly.qmd`` embedding
    ``../notebooks/x.ipynb``), so either renderer, or a user's own ``quarto render``, works
    there. Embeds of studies left out of this run (``studies`` in the params) become one
    sentence saying so, for both renderers alike.
    """
    root = project_root()
    (build_dir / "reports").mkdir(exist_ok=True)
    for qmd in (root / "reports").glob("*.qmd"):
        text = drop_embeds_of_studies_not_run(qmd.read_text(encoding="utf-8"), ran)
        (build_dir / "reports" / qmd.name).write_text(text, encoding="utf-8")
    if (root / "_quarto.yml").is_file():
        shutil.copy2(root / "_quarto.yml", build_dir / "_quarto.yml")
    return build_dir / "reports" / "quarterly.qmd"


def _remove_quarto_scratch(build_dir: Path) -> None:
    """Drop what ``quarto render`` leaves in the build folder besides the outputs: its cache
    ``.quarto/`` and the ``.gitignore`` it writes to ignore that cache (the build folder is ours,
    made fresh for this run, so neither belongs to the user)."""
    shutil.rmtree(build_dir / ".quarto", ignore_errors=True)
    ignore = build_dir / ".gitignore"
    if ignore.is_file() and ".quarto" in ignore.read_text(encoding="utf-8", errors="replace"):
        ignore.unlink()


def drop_embeds_of_studies_not_run(qmd_text: str, ran: set[str]) -> str:
    """Replace the embeds of notebooks not in ``ran``.

    The first embed of each such notebook becomes a sentence; its other embeds are removed.

    Examples
    --------
    >>> text = (
    ...     "{{< embed ../notebooks/asset_usage.ipynb#tbl-a >}}\\n"
    ...     "{{< embed ../notebooks/asset_usage.ipynb#fig-b >}}"
    ... )
    >>> drop_embeds_of_studies_not_run(text, {"funnel_sla"})
    '*The asset_usage study was not part of this run (see `studies` in the params).*\\n'
    """
    said: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = Path(match["path"]).stem
        if name in ran:
            return match[0]
        if name in said:
            return ""
        said.add(name)
        return f"*The {name} study was not part of this run (see `studies` in the params).*"

    return render.EMBED.sub(replace, qmd_text)


def _publish(build_dir: Path, final: Path) -> None:
    """Rename ``build_dir`` into ``final``; the old ``final`` goes only after the rename."""
    retired = None
    if final.exists():
        retired = final.with_name(f".{final.name}.retired-{os.getpid()}")
        final.rename(retired)
    try:
        build_dir.rename(final)
    except OSError:
        if retired is not None:
            retired.rename(final)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    shutil.rmtree(final.with_name(f"{final.name}.failed"), ignore_errors=True)


def _keep_failed(build_dir: Path, failed: Path) -> Path | None:
    """Rename a failed ``build_dir`` to ``failed`` (replacing an older one) and return it;
    None when it could not be kept (then it is removed)."""
    shutil.rmtree(failed, ignore_errors=True)
    try:
        build_dir.rename(failed)
    except OSError:
        shutil.rmtree(build_dir, ignore_errors=True)
        return None
    return failed


def _manifest(
    params: ReportParams,
    data_dir: Path,
    runs: tuple[StudyRun, ...],
    timings: dict[str, float],
    renderer: str,
) -> dict[str, Any]:
    from alignment import store

    return {
        "quarter": params.quarter,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": params.model_dump(mode="json"),
        "data": {"path": str(data_dir), "fingerprint": store.fingerprint(data_dir)},
        "notebooks": [run.name for run in runs],
        "versions": package_versions(),
        "git_commit": git_commit(),
        "renderer": renderer,
        "timings_s": {step: round(seconds, 3) for step, seconds in timings.items()},
    }


def package_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages that produce the numbers."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The project checkout's commit (``-dirty`` when it has uncommitted changes), or None."""
    root = project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def run_single_study(name: str, parameters: dict[str, Any], out_dir: Path) -> StudyRun:
    """``alignment run``: one study into ``out_dir`` (built beside it, renamed into place)."""
    if name not in STUDIES:
        raise ReportInputError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    check_engine(str(parameters.get("engine", "duckdb")))
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        run = run_notebook(
            name, {**parameters, "output_dir": str(build_dir)}, build_dir / f"{name}.ipynb"
        )
    except BaseException as exc:
        kept = _keep_failed(build_dir, out_dir.with_name(f"{out_dir.name}.failed"))
        if isinstance(exc, StudyFailed):
            exc.moved(build_dir, kept)
        raise
    _publish(build_dir, out_dir)
    return StudyRun(name, out_dir / f"{name}.ipynb", run.seconds)
