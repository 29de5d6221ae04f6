"""alignment.pipeline: studies run by Papermill, published atomically, failures named.

Each fixture notebook in tests/notebooks/ is one behaviour (papermill's habit): `completes`,
`raises_data_error`, `needs_missing_table`. A throw-away project (ALIGNMENT_PROJECT_ROOT) holds
them under study names, the real executive summary notebook and report sources.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from alignment import pipeline
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


def test_failing_study_names_notebook_and_cell_and_keeps_the_last_good_report(
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
    with pytest.raises(pipeline.StudyFailed) as caught:
        pipeline.build_report(
            load_report_params(params_file),
            params_file=params_file,
            formats=("html",),
            renderer="offline",
        )
    assert caught.value.notebook == "funnel_sla"
    assert caught.value.cell == "tbl-sla-compliance"
    assert caught.value.ename == "DataError"
    assert "stage_events.csv, column entered_at, rows 3, 4" in caught.value.evalue
    assert folder_digest(good.out_dir) == before
    assert (good.out_dir.parent / "2025Q1.failed" / "notebooks" / "funnel_sla.ipynb").is_file()


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
