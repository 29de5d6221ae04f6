"""`alignment report` end to end on the small demo: every study, HTML and PDF, planted findings.

One build (about 25 s on 2 cores) shared by the assertions below; it writes to a temporary
folder, never into reports/_build/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alignment import demo, pipeline
from alignment.params import load_report_params, project_root
from alignment.summary import MAX_HEADLINES, MIN_HEADLINES
from test_render import page_footers  # text in a PDF page's bottom margin

SECTIONS = (
    "Executive summary", "Shared definitions", "Funnel and hand-off", "Lead quality",
    "Attribution", "Content assets", "Lift studies", "Appendix",
)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[pipeline.BuildResult, dict]:
    root = tmp_path_factory.mktemp("e2e")
    data = root / "demo"
    demo.generate_demo(data, seed=7, scale="small")
    params_file = project_root() / "params" / "2026Q3.yaml"
    result = pipeline.build_report(
        load_report_params(params_file),
        params_file=params_file,
        data_dir=data,
        out_root=root / "_build",
        renderer="offline",
    )
    truth = json.loads((data / "ground_truth.json").read_text())
    return result, truth


def html_text(result: pipeline.BuildResult) -> str:
    return result.outputs["html"].read_text(encoding="utf-8")


def test_html_has_every_section_and_opens_offline(built) -> None:
    html = html_text(built[0])
    for section in SECTIONS:
        assert re.search(rf"<h1[^>]*>.*{re.escape(section)}</h1>", html), section
    assert not re.search(r"<script[^>]+src=\"https?:", html)
    assert not re.search(r"<link[^>]+href=\"https?:", html)
    assert not re.search(r"<img[^>]+src=\"https?:", html)


def test_planted_findings_appear_in_the_report(built) -> None:
    result, truth = built
    html = html_text(result)
    (region,) = truth["funnel"]["over_capacity_regions"]
    # the funnel verdict (funnel_sla#txt-funnel-verdict) names the regions over capacity
    assert f"Over capacity: {region}." in html
    regions = pd_read(result, "tbl-capacity-by-region-full")  # behind tbl-capacity-by-region
    assert regions.loc[regions.is_over_capacity.astype(bool), "unit"].tolist() == [region]
    # the report shows the first 15 assets to act on and saves the full list with -full
    to_act_on = pd_read(result, "tbl-unused-and-stale-assets-full").set_index("asset_id")
    never_used = truth["assets"]["never_used"]
    assert len(never_used) >= 3
    assert set(never_used) <= set(to_act_on.index)
    for asset in never_used:
        assert "never shared or presented" in to_act_on.at[asset, "issues"], asset
    assert set(truth["assets"]["stale"]) <= set(to_act_on.index)


def pd_read(result: pipeline.BuildResult, label: str):
    import pandas as pd

    return pd.read_csv(result.out_dir / "tables" / f"{label}.csv")


def test_hostile_asset_title_is_text_not_markup(built) -> None:
    html = html_text(built[0])
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_pdf_has_the_sections_and_a_sensible_length(built) -> None:
    pypdf = pytest.importorskip("pypdf", reason="pypdf is in the dev extra")
    reader = pypdf.PdfReader(built[0].outputs["pdf"])
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert 12 <= len(reader.pages) <= 45
    for section in SECTIONS:
        assert section in text
    # page numbers: the lowest text in each page's bottom margin is its number
    numbers = [(page_footers(page) or [None])[-1] for page in reader.pages]
    assert numbers == [str(n) for n in range(1, len(reader.pages) + 1)]


def test_every_study_ran_and_the_manifest_records_it(built) -> None:
    result, _ = built
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert set(manifest["notebooks"]) == {
        "funnel_sla", "lead_scoring", "attribution", "asset_usage", "conversion_lift",
        "executive_summary",
    }  # fmt: skip
    assert manifest["data"]["fingerprint"]["touchpoints"]["rows"] > 20_000
    assert manifest["timings_s"]["render"] > 0


def test_headline_kpis_are_sentences_with_their_change(built) -> None:
    html = html_text(built[0])
    summary = html.split('id="executive-summary"')[1].split('id="shared-definitions"')[0]
    bullets = re.findall(r"<li>(.*?)</li>", summary, flags=re.S)
    assert MIN_HEADLINES <= len(bullets) <= MAX_HEADLINES  # DESIGN.md: 5-7 headline KPIs
    assert all(bullet.rstrip().endswith(".") for bullet in bullets)  # sentences
    assert "headline KPIs had a value this quarter" not in summary  # no short-summary note
    assert len(re.findall(r"<li>[^<]+ (rose|fell) from [^<]+ to [^<]+\(", summary)) >= 3


@pytest.mark.parametrize("study", ["lead_scoring", "asset_usage", "attribution"])
def test_rerunning_a_study_gives_the_same_numbers(built, tmp_path: Path, study: str) -> None:
    # Reference: the first build's tables. Tolerance: 1e-9 relative, for DuckDB's parallel
    # float sums, whose order (and so last digit) may change between runs.
    import pandas as pd

    result, _ = built
    notebook = json.loads((result.out_dir / "notebooks" / f"{study}.ipynb").read_text())
    parameters = {**notebook["metadata"]["papermill"]["parameters"], "output_dir": str(tmp_path)}
    pipeline.run_notebook(study, parameters, tmp_path / f"{study}.ipynb")
    for again in sorted((tmp_path / "tables").glob("*.csv")):
        first = pd.read_csv(result.out_dir / "tables" / again.name)
        second = pd.read_csv(again)
        pd.testing.assert_frame_equal(first, second, check_exact=False, rtol=1e-9)
