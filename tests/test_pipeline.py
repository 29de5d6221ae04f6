"""alignment.pipeline: studies run by Papermill, published atomically, failures named.

Each fixture notebook in tests/notebooks/ is one behaviour (papermill's habit): `completes`,
`raises_data_error`, `needs_missing_table`. A throw-away project (ALIGNMENT_PROJECT_ROOT) holds
them under study names, the real executive summary notebook and report sources.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alignment import pipeline
from alignment.cli import app
from alignment.params import load_report_params

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "notebooks"
GOOD_DATA = Path(__file__).parent / "data" / "bad" / "good"  # valid data, quarter 2025Q1


FIXTURE_QMD = """---
title: "Fixture report"
---

# Executive summary

{{< embed ../notebooks/executive_summary.ipynb#txt-headlines >}}

# Funnel

{{< embed ../notebooks/funnel_sla.ipynb#tbl-completed >}}

# Content assets

{{< embed ../notebooks/asset_usage.ipynb#txt-asset-events >}}

# Appendix

{{< embed ../notebooks/executive_summary.ipynb#tbl-data-fingerprint >}}
"""


def make_project(tmp_path: Path, studies: dict[str, str]) -> Path:
    """A project folder whose notebooks/<study>.ipynb are the named fixture notebooks."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "params").mkdir()
    (project / "reports").mkdir()
    (project / "reports" / "quarterly.qmd").write_text(FIXTURE_QMD, encoding="utf-8")
    shutil.copy2(ROOT / "_quarto.yml", project / "_quarto.yml")
    shutil.copy2(ROOT / "notebooks" / "executive_summary.ipynb", project / "notebooks")
    for study, fixture in studies.items():
        shutil.copy2(FIXTURES / f"{fixture}.ipynb", project / "notebooks" / f"{study}.ipynb")
    shutil.copytree(GOOD_DATA, project / "data")
    base = yaml.safe_load((ROOT / "params" / "2026Q3.yaml").read_text())
    base.update(quarter="2025Q1", data="data", studies=list(studies))
    (project / "params" / "2025Q1.yaml").write_text(yaml.safe_dump(base))
    return project


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> pipeline.BuildResult:
    tmp_path = tmp_path_factory.mktemp("published")
    project = make_project(
        tmp_path, {"funnel_sla": "completes", "asset_usage": "needs_missing_table"}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALIGNMENT_PROJECT_ROOT", str(project))
        (project / "data" / "asset_events.csv").unlink()
        params_file = project / "params" / "2025Q1.yaml"
        return pipeline.build_report(
            load_report_params(params_file), params_file=params_file, renderer="offline"
        )


def test_publishes_html_pdf_notebooks_tables_and_manifest(published: pipeline.BuildResult) -> None:
    out = published.out_dir
    assert out.name == "2025Q1" and out.parent.name == "_build"
    assert {p.name for p in published.outputs.values()} == {
        "alignment-2025Q1.html",
        "alignment-2025Q1.pdf",
    }
    assert (out / "notebooks" / "funnel_sla.ipynb").is_file()
    assert (out / "tables" / "tbl-completed.csv").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quarter"] == "2025Q1"
    assert manifest["data"]["fingerprint"]["touchpoints"]["rows"] == 6
    assert set(manifest["timings_s"]) >= {"validate", "studies", "executive_summary", "render"}
    assert manifest["versions"]["papermill"] != "not installed"
    assert not list(out.parent.glob(".2025Q1.building-*"))


def test_missing_optional_table_gives_a_sentence_not_a_failure(
    published: pipeline.BuildResult,
) -> None:
    html = published.outputs["html"].read_text(encoding="utf-8")
    assert "No asset events in this export." in html


def test_summary_states_kpis_from_the_studies(published: pipeline.BuildResult) -> None:
    html = published.outputs["html"].read_text(encoding="utf-8")
    assert "Completed studies was 1 (no earlier quarter to compare)." in html
    assert "Only 1 headline KPI had a value this quarter, fewer than the 5" in html


def test_failing_study_makes_report_exit_1_naming_notebook_cell_and_the_kept_notebook(
    tmp_path: Path, monkeypatch
) -> None:
    project = make_project(tmp_path, {"funnel_sla": "completes"})
    monkeypatch.setenv("ALIGNMENT_PROJECT_ROOT", str(project))
    params_file = project / "params" / "2025Q1.yaml"
    good = pipeline.build_report(
        load_report_params(params_file),
        params_file=params_file,
        formats=("html",),
        renderer="offline",
    )
    before = folder_digest(good.out_dir)
    shutil.copy2(FIXTURES / "raises_data_error.ipynb", project / "notebooks" / "funnel_sla.ipynb")

    result = CliRunner().invoke(app, ["report", "--params", str(params_file), "--format", "html"])

    assert result.exit_code == 1, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert (
        "funnel_sla failed in cell tbl-sla-compliance: DataError: "
        "stage_events.csv, column entered_at, rows 3, 4"
    ) in error
    printed = Path(re.search(r"\(executed notebook: (\S+\.ipynb)\)$", error)[1])
    assert printed.is_file()  # the failed build was renamed; the path printed is the new one
    assert printed == good.out_dir.with_name("2025Q1.failed") / "notebooks" / "funnel_sla.ipynb"
    assert folder_digest(good.out_dir) == before
    assert sorted(p.name for p in good.out_dir.parent.iterdir()) == ["2025Q1", "2025Q1.failed"]


def test_a_failed_single_study_names_its_notebook_where_it_was_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_notebook(name: str, parameters: dict, executed: Path) -> pipeline.StudyRun:
        executed.write_text("{}", encoding="utf-8")  # Papermill writes it before raising
        raise pipeline.StudyFailed(name, "tbl-x", "DataError", "broken", str(executed))

    monkeypatch.setattr(pipeline, "run_notebook", run_notebook)
    out_dir = tmp_path / "studies" / "funnel_sla"
    with pytest.raises(pipeline.StudyFailed) as caught:
        pipeline.run_single_study("funnel_sla", {}, out_dir)
    kept = out_dir.with_name("funnel_sla.failed") / "funnel_sla.ipynb"
    assert caught.value.executed == str(kept) and kept.is_file()
    assert str(caught.value).endswith(f"(executed notebook: {kept})")
    assert caught.value.args[-1] == str(kept)
    assert not list(out_dir.parent.glob(".funnel_sla.building-*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"studies": ["funnel_sla", "lead_scoring"]},
            "notebooks/lead_scoring.ipynb does not exist",
        ),
        ({"quarter": "2031Q1"}, "quarter 2031Q1 lies outside the data"),
    ],
)
def test_bad_params_are_refused_before_anything_runs(
    tmp_path: Path, monkeypatch, change, message
) -> None:
    project = make_project(tmp_path, {"funnel_sla": "completes"})
    monkeypatch.setenv("ALIGNMENT_PROJECT_ROOT", str(project))
    params_file = project / "params" / "2025Q1.yaml"
    raw = yaml.safe_load(params_file.read_text())
    raw.update(change)
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(pipeline.ReportInputError, match=message):
        pipeline.build_report(load_report_params(params_file), params_file=params_file)
    assert not (project / "reports" / "_build" / "2025Q1").exists()
    assert (
        not list((project / "reports" / "_build").glob("*"))
        if (project / "reports" / "_build").exists()
        else True
    )


def test_data_breaking_the_contract_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch
) -> None:
    project = make_project(tmp_path, {"funnel_sla": "completes"})
    monkeypatch.setenv("ALIGNMENT_PROJECT_ROOT", str(project))
    shutil.rmtree(project / "data")
    shutil.copytree(Path(__file__).parent / "data" / "bad" / "duplicate_ids", project / "data")
    params_file = project / "params" / "2025Q1.yaml"
    with pytest.raises(pipeline.ReportInputError, match="breaks the data contract.*breaks unique"):
        pipeline.build_report(load_report_params(params_file), params_file=params_file)


def fake_studies(
    monkeypatch: pytest.MonkeyPatch, behaviour: dict[str, object]
) -> list[tuple[str, str]]:
    """Replace Papermill by ``behaviour[name]()`` (returns, or raises); record the progress."""
    events: list[tuple[str, str]] = []

    def run_notebook(name: str, parameters: dict, executed: Path) -> pipeline.StudyRun:
        behaviour[name]()
        return pipeline.StudyRun(name, executed, 0.0)

    monkeypatch.setattr(pipeline, "run_notebook", run_notebook)
    return events


def test_each_study_is_reported_done_as_soon_as_it_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "slow" can only finish once "fast" was reported done: waiting for the whole batch before
    # reporting (the old behaviour) leaves the event unset and the flag False.
    import threading

    fast_reported = threading.Event()
    seen_in_time: list[bool] = []

    def slow() -> None:
        seen_in_time.append(fast_reported.wait(timeout=1.5))

    events = fake_studies(monkeypatch, {"slow": slow, "fast": lambda: None})

    def progress(step: str, state: str) -> None:
        events.append((step, state))
        if (step, state) == ("fast", "done"):
            fast_reported.set()

    runs = pipeline.run_studies(["slow", "fast"], {}, tmp_path, workers=2, progress=progress)
    assert seen_in_time == [True]
    assert [run.name for run in runs] == ["slow", "fast"]  # the order asked for
    assert sorted(events) == sorted(
        [("slow", "start"), ("fast", "start"), ("slow", "done"), ("fast", "done")]
    )
    assert events.index(("fast", "done")) < events.index(("slow", "done"))


def test_a_failing_study_stops_the_batch_and_is_reported_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two workers: "bad" fails while "alongside" runs; "later" waits in the queue. The worker
    # freed by "bad" must not start "later"; "alongside" is let finish and reported.
    import threading
    import time

    alongside_started = threading.Event()
    ran: list[str] = []

    def bad() -> None:
        alongside_started.wait(timeout=1.5)
        raise pipeline.StudyFailed("bad", "tbl-x", "DataError", "broken")

    def alongside() -> None:
        alongside_started.set()
        time.sleep(0.2)

    events = fake_studies(
        monkeypatch, {"bad": bad, "alongside": alongside, "later": lambda: ran.append("later")}
    )
    with pytest.raises(pipeline.StudyFailed, match="bad failed in cell tbl-x"):
        pipeline.run_studies(
            ["bad", "alongside", "later"], {}, tmp_path, workers=2,
            progress=lambda step, state: events.append((step, state)),
        )  # fmt: skip
    assert sorted(events[:2]) == [("alongside", "start"), ("bad", "start")]
    assert events[2:] == [("bad", "failed"), ("alongside", "done")]
    assert ran == []  # queued behind the failure: never started, never reported


@pytest.mark.parametrize(
    ("ignore_text", "kept"), [("/.quarto/\n**/*.quarto_ipynb\n", False), ("*.log\n", True)]
)
def test_quarto_scratch_is_not_published(tmp_path: Path, ignore_text: str, kept: bool) -> None:
    # What Quarto 1.11 leaves in a project folder after `quarto render` (seen in a real run):
    # its cache .quarto/ and a .gitignore naming it. A .gitignore of anyone else stays.
    (tmp_path / ".quarto" / "xref").mkdir(parents=True)
    (tmp_path / ".quarto" / "xref" / "x.json").write_text("{}", encoding="utf-8")
    (tmp_path / ".gitignore").write_text(ignore_text, encoding="utf-8")
    (tmp_path / "alignment-2026Q3.html").write_text("report", encoding="utf-8")
    pipeline._remove_quarto_scratch(tmp_path)
    assert not (tmp_path / ".quarto").exists()
    assert (tmp_path / ".gitignore").exists() is kept
    assert (tmp_path / "alignment-2026Q3.html").read_text(encoding="utf-8") == "report"
