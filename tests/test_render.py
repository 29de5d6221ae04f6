"""alignment.render: embeds resolve from stored outputs; offline HTML and PDF stand alone."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from alignment import render

TABLE_MD = "| title | share |\n|:--|:--|\n| &lt;script&gt;alert(1)&lt;/script&gt; | 50.0 % |"


def tiny_png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def executed_notebook(path: Path, *, error_in: str | None = None) -> Path:
    """A notebook as Papermill leaves it: labelled cells with stored outputs, no kernel."""
    nb = nbformat.v4.new_notebook()
    table = nbformat.v4.new_code_cell('#| label: tbl-demo\n#| tbl-cap: "Demo table"\nshow()')
    table.outputs = [
        nbformat.v4.new_output("display_data", data={"text/markdown": TABLE_MD}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "*Top 1 of 1 shown.*"}),
    ]
    figure = nbformat.v4.new_code_cell(
        '#| label: fig-demo\n#| fig-cap: "Demo figure, in %"\n#| fig-alt: "A rising line"\nplot()'
    )
    png = base64.b64encode(tiny_png()).decode()
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    text = nbformat.v4.new_code_cell("#| label: txt-verdict\nverdict()")
    text.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/markdown": "**Inconclusive.**"})
    ]
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), table, figure, text]
    if error_in:
        broken = nbformat.v4.new_code_cell(f"#| label: {error_in}\nboom()")
        broken.outputs = [
            nbformat.v4.new_output("error", ename="DataError", evalue="bad", traceback=[])
        ]
        nb.cells.append(broken)
    nbformat.write(nb, path)
    return path


QMD = """---
title: "Test report"
subtitle: "2026Q3"
format:
  html: {embed-resources: true}
---

# Funnel

As @tbl-demo and @fig-demo show.

{{< embed ../notebooks/demo.ipynb#tbl-demo >}}

{{< embed ../notebooks/demo.ipynb#txt-verdict >}}

{{< pagebreak >}}

# Attribution

{{< embed ../notebooks/demo.ipynb#fig-demo >}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "reports").mkdir()
    executed_notebook(tmp_path / "notebooks" / "demo.ipynb")
    (tmp_path / "reports" / "q.qmd").write_text(QMD, encoding="utf-8")
    return tmp_path


def test_cell_options_stop_at_the_first_code_line() -> None:
    source = '#| label: tbl-x\n#| tbl-cap: "A: b"\nx = 1\n#| label: ignored'
    assert render.cell_options(source) == {"label": "tbl-x", "tbl-cap": "A: b"}


def test_embeds_resolve_to_outputs_with_numbered_cross_references(project: Path) -> None:
    qmd = project / "reports" / "q.qmd"
    _, body = render.split_front_matter(qmd.read_text())
    markdown = render.resolve_embeds(body, qmd.parent, project / "figs")
    assert "[Table 1](#tbl-demo) and [Figure 1](#fig-demo)" in markdown
    assert ": Table 1: Demo table {#tbl-demo}\n\n*Top 1 of 1 shown.*" in markdown
    assert "**Inconclusive.**" in markdown
    assert (project / "figs" / "fig-demo.png").read_bytes().startswith(b"\x89PNG")
    assert "{{<" not in markdown


@pytest.mark.parametrize(
    ("shortcode", "message"),
    [
        ("{{< embed ../notebooks/missing.ipynb#tbl-demo >}}", "no notebook"),
        (
            "{{< embed ../notebooks/demo.ipynb#tbl-absent >}}",
            "no cell labelled tbl-absent in demo.ipynb",
        ),
    ],
)
def test_missing_notebook_or_label_is_named(project: Path, shortcode: str, message: str) -> None:
    with pytest.raises(render.RenderError, match=message):
        render.resolve_embeds(shortcode, project / "reports", project / "figs")


def test_a_stored_error_output_stops_the_render(project: Path) -> None:
    executed_notebook(project / "notebooks" / "demo.ipynb", error_in="tbl-broken")
    with pytest.raises(render.RenderError, match="demo.ipynb#tbl-broken stored an error: bad"):
        render.read_labelled_outputs(project / "notebooks" / "demo.ipynb")


def test_offline_html_is_self_contained_and_escapes_data(project: Path) -> None:
    result = render.render_report(
        project / "reports" / "q.qmd", project / "out", formats=("html",), renderer="offline"
    )
    html = result.outputs["html"].read_text(encoding="utf-8")
    assert result.renderer == "offline"
    assert re.search(r"<(script|link|img)[^>]+(src|href)=\"https?:", html) is None
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert 'src="data:image/png;base64,' in html
    assert "Funnel" in html and "Attribution" in html and 'id="TOC"' in html


def page_footers(page: Any, *, bottom_margin_pt: float = 62.0) -> list[str]:
    """The text a PDF page draws in its bottom margin (A4, 2.2 cm = 62.4 pt), top to bottom.

    pypdf's text visitor gives each run's text matrix and the CTM; y in points from the
    bottom edge is ``tm.f * cm.d + cm.f``.
    """
    found: list[tuple[float, str]] = []

    def visit(text: str, cm: list[float], tm: list[float], *_: object) -> None:
        if text.strip():
            found.append((tm[5] * cm[3] + cm[5], text.strip()))

    page.extract_text(visitor_text=visit)
    return [text for y, text in sorted(found, reverse=True) if 0 <= y < bottom_margin_pt]


def test_offline_pdf_has_headings_and_page_numbers(project: Path) -> None:
    pypdf = pytest.importorskip("pypdf", reason="pypdf is in the dev extra")
    result = render.render_report(
        project / "reports" / "q.qmd", project / "out", formats=("pdf",), renderer="offline"
    )
    reader = pypdf.PdfReader(result.outputs["pdf"])
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert len(reader.pages) == 2  # the pagebreak shortcode starts page 2
    assert [page_footers(page) for page in reader.pages] == [["1"], ["2"]]
    assert "Funnel" in text and "Attribution" in text and "Table 1: Demo table" in text
    assert "Figure 1: Demo figure, in %" in text
    assert "<script>alert(1)</script>" in text  # shown as text in the PDF


def test_long_ids_in_a_narrow_pdf_table_wrap_at_underscores(tmp_path: Path) -> None:
    # Reference: where pypdf finds the text. Without a break opportunity Typst sets the id on
    # one line that runs under the next column; with one, the id wraps inside its own column.
    pypdf = pytest.importorskip("pypdf", reason="pypdf is in the dev extra")
    long_id = "exp_joint_account_meetings_with_sales"
    header = "| experiment | " + " | ".join(f"treatment rate {i}" for i in range(12)) + " |"
    rule = "|" + "---|" * 13
    row = f"| {long_id} | " + " | ".join("29.3 %" for _ in range(12)) + " |"
    pdf = tmp_path / "t.pdf"
    render._render_pdf(f"{header}\n{rule}\n{row}\n", pdf, tmp_path, tmp_path)
    text = pypdf.PdfReader(pdf).pages[0].extract_text().replace("\u200b", "")
    assert "exp_" in text and "29.3 %" in text
    assert long_id not in text.replace("\n", " ")  # broken over lines: not one run of text
    assert long_id in text.replace("\n", "")  # ... and every piece is there, in order
    assert render._breakable_underscores("a\\_b") == "a\\_\\u{200b}b"


def test_a_table_caption_is_never_left_alone_at_the_foot_of_a_page(tmp_path: Path) -> None:
    # Reference: which page pypdf finds the caption on. The text fills page 1 so that only the
    # caption (placed above the table) would fit there; it must start page 2 with its rows.
    pypdf = pytest.importorskip("pypdf", reason="pypdf is in the dev extra")
    filler = " ".join(["Sales and marketing agree on definitions."] * 85)
    rows = "\n".join(f"| row {i} | x |" for i in range(40))
    document = f"{filler}\n\n| a | b |\n|---|---|\n{rows}\n\n: Table 1: Kept with its rows\n"
    pdf = tmp_path / "t.pdf"
    render._render_pdf(document, pdf, tmp_path, tmp_path)
    pages = [page.extract_text() for page in pypdf.PdfReader(pdf).pages]
    (on,) = [i for i, text in enumerate(pages) if "Kept with its rows" in text]
    assert "row 0" in pages[on]
    assert "Sales and marketing" in pages[on - 1]  # the filler did push the table over


def test_unknown_format_or_renderer_is_refused(project: Path) -> None:
    with pytest.raises(ValueError, match="formats must be among html, pdf; got docx"):
        render.render_report(project / "reports" / "q.qmd", project / "out", formats=("docx",))
    with pytest.raises(ValueError, match="renderer must be one of auto, quarto, offline"):
        render.render_report(project / "reports" / "q.qmd", project / "out", renderer="latex")


def test_quarto_renderer_without_quarto_says_how_to_get_it(project: Path, monkeypatch) -> None:
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(render.RenderError, match="quarto is not on PATH"):
        render.render_report(project / "reports" / "q.qmd", project / "out", renderer="quarto")


def quarto_project(root: Path, project_yaml: str) -> Path:
    """A staged build folder: _quarto.yml, reports/q.qmd, and one published quarter beside."""
    (root / "reports").mkdir(parents=True)
    (root / "_quarto.yml").write_text(project_yaml, encoding="utf-8")
    qmd = root / "reports" / "q.qmd"
    qmd.write_text("# Funnel\n", encoding="utf-8")
    return qmd


@pytest.mark.parametrize(
    ("project_yaml", "expected"),
    [
        # Quarto's project.ts moves a project file's output to join(output-dir, <input's path>)
        ("project:\n  render: [reports/q.qmd]\n  output-dir: reports/_build\n",
         "reports/_build/reports/r.html"),
        ("project:\n  output-dir: _out\n", "_out/reports/r.html"),  # no render list: all files
        ("project:\n  type: default\n", "reports/r.html"),  # no output-dir: beside the input
        ("project:\n  render: [other.qmd]\n  output-dir: _out\n", "reports/r.html"),  # not listed
    ],
)  # fmt: skip
def test_quarto_output_path_follows_the_project_output_dir(
    tmp_path: Path, project_yaml: str, expected: str
) -> None:
    qmd = quarto_project(tmp_path, project_yaml)
    assert render.quarto_output_path(qmd, "r.html") == tmp_path.resolve() / expected


def test_quarto_output_path_outside_a_project_is_beside_the_input(tmp_path: Path) -> None:
    (tmp_path / "q.qmd").write_text("# x\n", encoding="utf-8")
    assert render.quarto_output_path(tmp_path / "q.qmd", "r.pdf") == tmp_path.resolve() / "r.pdf"


def test_render_quarto_takes_each_output_from_the_output_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in `quarto` writes where Quarto 1.x writes a project file's output (project.ts:
    # <project>/<output-dir>/<input dir relative to the project>/<--output name>).
    import os
    import stat
    import sys

    qmd = quarto_project(
        tmp_path, "project:\n  render: [reports/q.qmd]\n  output-dir: reports/_build\n"
    )
    published = tmp_path / "reports" / "_build" / "2026Q2"  # an older quarter, left alone
    published.mkdir(parents=True)
    (published / "r.html").write_text("2026Q2", encoding="utf-8")
    (tmp_path / "reports" / "r.html").write_text("stale", encoding="utf-8")  # not Quarto's output
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "quarto"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "name = args[args.index('--output') + 1]\n"
        f"target = pathlib.Path({str(tmp_path / 'reports' / '_build' / 'reports')!r}) / name\n"
        "target.parent.mkdir(parents=True, exist_ok=True)\n"
        "target.write_text('rendered ' + args[args.index('--to') + 1])\n",
        encoding="utf-8",
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    out = tmp_path / "out"
    result = render.render_report(qmd, out, stem="r", renderer="auto")

    assert result.renderer == "quarto"
    assert result.outputs == {"html": out / "r.html", "pdf": out / "r.pdf"}
    assert (out / "r.html").read_text() == "rendered html"
    assert (out / "r.pdf").read_text() == "rendered typst"
    assert not (tmp_path / "reports" / "_build" / "reports").exists()  # emptied, removed
    assert (published / "r.html").read_text() == "2026Q2"
    assert (tmp_path / "reports" / "r.html").read_text() == "stale"


def test_render_quarto_that_writes_nothing_names_the_path_it_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qmd = quarto_project(tmp_path, "project:\n  output-dir: _out\n")
    monkeypatch.setattr(render.shutil, "which", lambda name: "/bin/true")
    with pytest.raises(render.RenderError, match=r"wrote no .*/_out/reports/r\.html$"):
        render.render_quarto(qmd, tmp_path / "out", formats=("html",), stem="r")
