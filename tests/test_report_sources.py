"""The Quarto sources, checked without Quarto: every embed names a notebook cell that exists.

CI has no Quarto binary, so the Quarto path is tested at the level of its sources (the
offline renderer reads the same sources; tests/test_render.py and the end-to-end test run it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from alignment import render
from alignment.params import STUDIES

ROOT = Path(__file__).resolve().parents[1]
QMD = ROOT / "reports" / "quarterly.qmd"
EMBEDS = [(m["path"], m["label"]) for m in render.EMBED.finditer(QMD.read_text(encoding="utf-8"))]


def notebook_cells(path: Path) -> dict[str, dict]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            options = render.cell_options("".join(cell["source"]))
            if "label" in options:
                found[options["label"]] = {"options": options, "outputs": cell.get("outputs", [])}
    return found


@pytest.mark.parametrize(
    ("path", "label"), EMBEDS, ids=[f"{p.split('/')[-1]}#{lbl}" for p, lbl in EMBEDS]
)
def test_every_embed_names_an_existing_labelled_cell(path: str, label: str) -> None:
    notebook = (QMD.parent / path).resolve()
    assert notebook.is_file(), f"{path} does not exist"
    cells = notebook_cells(notebook)
    assert label in cells, f"{notebook.name} has no cell labelled {label}"
    options = cells[label]["options"]
    if label.startswith("fig-"):
        assert options.get("fig-cap") and options.get("fig-alt"), (
            f"{label} needs fig-cap and fig-alt"
        )
    if label.startswith("tbl-"):
        assert options.get("tbl-cap"), f"{label} needs tbl-cap"


def test_report_embeds_every_study_and_the_summary() -> None:
    embedded = {Path(path).stem for path, _ in EMBEDS}
    assert embedded == {*STUDIES, "executive_summary"}


@pytest.mark.parametrize(
    "notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name
)
def test_notebooks_are_committed_without_outputs_and_have_a_parameters_cell(
    notebook: Path,
) -> None:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in code), "clear the outputs before committing"
    assert "parameters" in code[0]["metadata"].get("tags", []), (
        "first code cell must be tagged parameters"
    )
    for name in ("quarter", "data_dir", "params_file", "output_dir"):
        assert f"{name}:" in "".join(code[0]["source"]), f"parameters cell lacks {name}"


def test_quarto_project_renders_the_report_with_code_hidden_and_self_contained_html() -> None:
    project = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    assert project["project"]["render"] == ["reports/quarterly.qmd"]
    assert project["project"]["output-dir"] == "reports/_build"
    assert project["execute"]["echo"] is False
    assert project["format"]["html"]["embed-resources"] is True
    assert "typst" in project["format"]
    # render_quarto collects Quarto's output from the output-dir, at the input's project path
    assert render.quarto_output_path(QMD, "alignment-2026Q3.html") == (
        ROOT / "reports" / "_build" / "reports" / "alignment-2026Q3.html"
    )


def test_report_sections_follow_the_design_outline() -> None:
    headings = [line[2:].strip() for line in QMD.read_text().splitlines() if line.startswith("# ")]
    assert headings == [
        "Executive summary", "Shared definitions", "Funnel and hand-off", "Lead quality",
        "Attribution", "Content assets", "Lift studies", "Appendix",
    ]  # fmt: skip
