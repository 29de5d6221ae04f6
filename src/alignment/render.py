"""Render the quarterly report: Quarto when it is on PATH, else the built-in offline renderer.

The report's sources are Quarto-native: ``_quarto.yml`` and ``reports/quarterly.qmd``, whose
prose embeds labelled cells of executed notebooks with
``{{< embed ../notebooks/x.ipynb#label >}}``.
Both renderers read the same sources and the same executed notebooks, and re-execute nothing.

The offline renderer (CI and the demo use it; no internet, no TeX):

1. :func:`resolve_embeds` replaces every embed shortcode by the cell's stored output: a
   Markdown table (with its ``tbl-cap`` as caption), a PNG figure (``fig-cap``, ``fig-alt``)
   or Markdown text; ``@fig-…``/``@tbl-…`` cross-references become "Figure n"/"Table n".
2. pandoc (from ``pypandoc-binary``) turns that Markdown into one self-contained HTML file
   (``--embed-resources``: images inlined, no http(s) links, no CDN; never ``--mathjax``).
3. pandoc writes Typst, and ``typst`` from PyPI compiles the PDF (A4, page numbers, TOC).

Text from the data reaches the Markdown already escaped (``plots.show_table``), so a title like
``<script>`` shows as text.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

EMBED = re.compile(r"\{\{<\s*embed\s+(?P<path>[^\s#>]+)#(?P<label>[A-Za-z0-9_.:-]+)\s*>\}\}")
CROSS_REF = re.compile(r"@(?P<label>(?:fig|tbl)-[A-Za-z0-9_-]+)")
PAGEBREAK = re.compile(r"\{\{<\s*pagebreak\s*>\}\}")
CELL_OPTION = re.compile(r"^#\|\s*(?P<key>[A-Za-z0-9_-]+)\s*:\s*(?P<value>.*)$")
FORMATS: tuple[str, ...] = ("html", "pdf")
CSS_FILE = Path(__file__).with_name("report.css")
TYPST_STYLE = """\
#set figure(numbering: none)  // captions carry their own "Table n" / "Figure n"
// long tables continue on the next page; a figure (image) stays whole, with its caption
#show figure.where(kind: table): set block(breakable: true)
// a table's caption (above it) moves to the next page with the table, never left alone
#show figure.caption.where(kind: table): it => block(sticky: true, it)
#show table: set text(size: 7.5pt)
#show table: set par(justify: false)
#set table(inset: (x: 4pt, y: 3pt))
#set table(stroke: (x, y) => if y == 0 { (bottom: 0.6pt) } else { (bottom: 0.2pt + luma(210)) })
#show heading.where(level: 1): set block(above: 1.4em, below: 0.8em)
"""


class RenderError(RuntimeError):
    """The report could not be rendered: a missing notebook or label, or a renderer failure."""


@dataclass(frozen=True, slots=True)
class LabelledOutput:
    """The stored output of one labelled notebook cell."""

    label: str
    options: dict[str, Any]  # the cell's `#| key: value` options (label, fig-cap, tbl-cap, ...)
    markdown: str | None = None  # the text/markdown outputs (tables, verdicts, notes), joined
    markdown_parts: tuple[str, ...] = ()  # the same outputs one by one, in display order
    png: bytes | None = None  # an image/png output (figures)
    text: str | None = None  # text/plain, used only when nothing richer exists

    @property
    def caption(self) -> str | None:
        return self.options.get("fig-cap") or self.options.get("tbl-cap")


@dataclass(frozen=True, slots=True)
class RenderResult:
    """What a render produced: the output files by format and the renderer used."""

    outputs: dict[str, Path]
    renderer: str  # "quarto" or "offline"
    warnings: tuple[str, ...] = field(default_factory=tuple)


def cell_options(source: str) -> dict[str, Any]:
    """The ``#| key: value`` lines at the top of a cell, parsed as YAML values.

    Examples
    --------
    >>> cell_options('#| label: fig-x\\n#| fig-cap: "Credit, %"\\nplot()')
    {'label': 'fig-x', 'fig-cap': 'Credit, %'}
    """
    options: dict[str, Any] = {}
    for line in source.splitlines():
        match = CELL_OPTION.match(line.strip())
        if match is None:
            break
        value = match["value"].strip()
        try:
            options[match["key"]] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            options[match["key"]] = value
    return options


def read_labelled_outputs(notebook: Path) -> dict[str, LabelledOutput]:
    """Every labelled code cell of an executed notebook with its richest stored output.

    Raises :class:`RenderError` when a labelled cell stored an error output.
    """
    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as exc:
        raise RenderError(f"cannot read notebook {notebook}: {exc}") from exc
    found: dict[str, LabelledOutput] = {}
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        options = cell_options(source)
        label = options.get("label")
        if not label:
            continue
        found[str(label)] = _richest_output(str(label), options, cell.get("outputs", []), notebook)
    return found


def _richest_output(
    label: str, options: dict[str, Any], outputs: list[dict[str, Any]], notebook: Path
) -> LabelledOutput:
    parts: list[str] = []
    png = text = None
    for output in outputs:
        if output.get("output_type") == "error":
            raise RenderError(f"{notebook.name}#{label} stored an error: {output.get('evalue')}")
        data = output.get("data", {})
        if "text/markdown" in data:
            parts.append("".join(data["text/markdown"]))
        if "image/png" in data and png is None:
            png = base64.b64decode("".join(data["image/png"]))
        if "text/plain" in data and text is None:
            text = "".join(data["text/plain"])
    markdown = "\n\n".join(parts) if parts else None
    return LabelledOutput(label, options, markdown, tuple(parts), png, text)


def _numbering(qmd_text: str) -> dict[str, str]:
    """'Figure n' / 'Table n' for each embedded fig-/tbl- label, in order of appearance."""
    names: dict[str, str] = {}
    counts = {"fig": 0, "tbl": 0}
    for match in EMBED.finditer(qmd_text):
        kind = match["label"].split("-", 1)[0]
        if kind in counts and match["label"] not in names:
            counts[kind] += 1
            names[match["label"]] = f"{'Figure' if kind == 'fig' else 'Table'} {counts[kind]}"
    return names


def resolve_embeds(qmd_text: str, qmd_dir: Path, figures_dir: Path) -> str:
    """Replace each embed shortcode by the stored output it names (offline renderer, step 1).

    Notebook paths are relative to ``qmd_dir``. Figures are written to ``figures_dir`` and
    referenced by absolute path (pandoc inlines them). Raises :class:`RenderError` naming the
    shortcode when a notebook or label is missing.
    """
    cache: dict[Path, dict[str, LabelledOutput]] = {}
    numbers = _numbering(qmd_text)
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        path = (qmd_dir / match["path"]).resolve()
        if path not in cache:
            if not path.is_file():
                problems.append(f"{match[0]}: no notebook {path}")
                return ""
            cache[path] = read_labelled_outputs(path)
        output = cache[path].get(match["label"])
        if output is None:
            problems.append(f"{match[0]}: no cell labelled {match['label']} in {path.name}")
            return ""
        return _output_markdown(output, numbers.get(output.label), figures_dir)

    resolved = EMBED.sub(replace, qmd_text)
    if problems:
        raise RenderError("; ".join(problems))
    resolved = CROSS_REF.sub(
        lambda m: f"[{numbers.get(m['label'], m['label'])}](#{m['label']})", resolved
    )
    return PAGEBREAK.sub("\n```{=typst}\n#pagebreak()\n```\n", resolved)


def _output_markdown(output: LabelledOutput, number: str | None, figures_dir: Path) -> str:
    """Markdown for one stored output; numbered captions are written out ("Table 2: …") so
    that HTML and PDF show the same numbers as the "Table n" cross-references."""
    caption = output.caption or ""
    title = f"{number}: {caption}" if number and caption else (number or caption)
    if output.png is not None:
        figures_dir.mkdir(parents=True, exist_ok=True)
        image = figures_dir / f"{output.label}.png"
        image.write_bytes(output.png)
        alt = str(output.options.get("fig-alt", caption)).replace('"', "'")
        return (
            f'\n![{title}]({image.as_posix()}){{#{output.label} fig-alt="{alt}" width="100%"}}\n'
        )
    body = output.markdown if output.markdown is not None else _as_code(output.text or "")
    tables = [i for i, part in enumerate(output.markdown_parts) if part.lstrip().startswith("|")]
    if output.label.startswith("tbl-") and title and tables:
        # the caption goes right under the first table (pandoc's rule); notes stay in order
        parts = list(output.markdown_parts)
        first = tables[0]
        parts[first] = f"{parts[first].strip()}\n\n: {title} {{#{output.label}}}"
        return "\n" + "\n\n".join(p.strip() for p in parts) + "\n"
    if output.label.startswith("tbl-") and title:
        return f"\n::: {{#{output.label} .table-block}}\n**{title}**\n\n{body}\n:::\n"
    return f"\n::: {{#{output.label}}}\n{body}\n:::\n"


def _as_code(text: str) -> str:
    return "```\n" + text.rstrip() + "\n```" if text else ""


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(metadata, body)`` of a ``.qmd``: its leading ``---`` YAML block, read safely."""
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        return {}, text
    meta = yaml.safe_load(text[3:end]) or {}
    return (meta if isinstance(meta, dict) else {}), text[end + 4 :].lstrip("\n")


def render_offline(
    qmd: Path, out_dir: Path, *, formats: tuple[str, ...] = FORMATS, stem: str | None = None
) -> RenderResult:
    """Render ``qmd`` to self-contained HTML and/or PDF in ``out_dir`` without Quarto."""
    import pypandoc

    _check_formats(formats)
    qmd, out_dir = Path(qmd), Path(out_dir)
    meta, body = split_front_matter(qmd.read_text(encoding="utf-8"))
    stem = stem or qmd.stem
    outputs: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="alignment-render-") as scratch:
        markdown = resolve_embeds(body, qmd.parent, Path(scratch) / "figures")
        document = _pandoc_document(meta, markdown)
        pdf_document = _pandoc_document(
            meta,
            markdown,
            papersize="a4",
            fontsize="10pt",
            margin={"x": "2cm", "y": "2.2cm"},
        )
        if "html" in formats:
            outputs["html"] = out_dir / f"{stem}.html"
            pypandoc.convert_text(
                document,
                "html5",
                format="markdown",
                outputfile=str(outputs["html"]),
                extra_args=[
                    "--standalone",
                    "--embed-resources",
                    "--toc",
                    "--toc-depth=2",
                    "--number-sections",
                    "--columns=10000",  # pipe tables keep natural column widths
                    f"--css={CSS_FILE}",
                    f"--resource-path={scratch}:{qmd.parent}",
                ],
            )
        if "pdf" in formats:
            outputs["pdf"] = out_dir / f"{stem}.pdf"
            _render_pdf(pdf_document, outputs["pdf"], Path(scratch), qmd.parent)
    return RenderResult(outputs=outputs, renderer="offline")


def _pandoc_document(meta: dict[str, Any], markdown: str, **extra: Any) -> str:
    keep = {k: meta[k] for k in ("title", "subtitle", "date", "author", "lang") if k in meta}
    keep.setdefault("lang", "en")
    keep.update(extra)
    header = yaml.safe_dump(keep, sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n{markdown}"


def _render_pdf(document: str, pdf: Path, scratch: Path, qmd_dir: Path) -> None:
    import pypandoc
    import typst

    source = scratch / "report.typ"
    style = scratch / "style.typ"
    style.write_text(TYPST_STYLE, encoding="utf-8")
    pypandoc.convert_text(
        document,
        "typst",
        format="markdown",
        outputfile=str(source),
        extra_args=[
            "--standalone",
            "--toc",
            "--toc-depth=2",
            "--number-sections",
            "--columns=10000",
            f"--include-in-header={style}",
            f"--resource-path={scratch}:{qmd_dir}",
        ],
    )
    source.write_text(_breakable_underscores(source.read_text(encoding="utf-8")), encoding="utf-8")
    try:
        typst.compile(str(source), output=str(pdf), root="/")
    except Exception as exc:  # typst raises its own error types
        raise RenderError(f"typst could not compile the PDF: {exc}") from exc


def _breakable_underscores(typst_source: str) -> str:
    """Let Typst break a line after an underscore: ids such as ``exp_joint_account_meetings``
    otherwise run over the next table column. Pandoc writes a literal underscore as ``\\_``;
    a zero-width space (``\\u{200b}``, invisible) after it is a break opportunity."""
    return typst_source.replace("\\_", "\\_\\u{200b}")


def render_quarto(
    qmd: Path, out_dir: Path, *, formats: tuple[str, ...] = FORMATS, stem: str | None = None
) -> RenderResult:
    """Render with ``quarto render`` (the project's ``_quarto.yml`` applies); same outputs.

    Quarto writes each output where :func:`quarto_output_path` says (the project's
    ``output-dir``); it is moved from there into ``out_dir``, and the folders it leaves
    empty are removed.
    """
    _check_formats(formats)
    quarto = shutil.which("quarto")
    if quarto is None:
        raise RenderError("quarto is not on PATH (pip install '.[quarto]' where online)")
    qmd, out_dir = Path(qmd).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or qmd.stem
    outputs: dict[str, Path] = {}
    for fmt in formats:
        to = "typst" if fmt == "pdf" else "html"
        command = [quarto, "render", str(qmd), "--to", to, "--output", f"{stem}.{fmt}"]
        done = subprocess.run(command, cwd=qmd.parent, capture_output=True, text=True)
        if done.returncode != 0:
            tail = " ".join(done.stderr.strip().splitlines()[-3:])
            raise RenderError(f"quarto render --to {to} failed: {tail}")
        produced = quarto_output_path(qmd, f"{stem}.{fmt}")
        if not produced.is_file():
            raise RenderError(f"quarto reported success but wrote no {produced}")
        outputs[fmt] = out_dir / f"{stem}.{fmt}"
        if produced.resolve() != outputs[fmt].resolve():
            shutil.move(str(produced), outputs[fmt])
            _remove_empty_folders(produced.parent, stop=_quarto_project(qmd))
    return RenderResult(outputs=outputs, renderer="quarto")


def _quarto_project(qmd: Path) -> Path | None:
    """The folder of the nearest ``_quarto.yml`` (or ``.yaml``) at or above ``qmd``'s folder."""
    for folder in (qmd.parent, *qmd.parent.parents):
        if (folder / "_quarto.yml").is_file() or (folder / "_quarto.yaml").is_file():
            return folder
    return None


def quarto_output_path(qmd: Path, name: str) -> Path:
    """Where ``quarto render <qmd> --output <name>`` writes its output.

    Inside a Quarto project whose ``render`` list holds the file, the output goes to the
    project's ``output-dir`` at the input's path relative to the project
    (``<project>/<output-dir>/reports/<name>`` for ``reports/quarterly.qmd``); with no
    ``output-dir``, or for a file rendered on its own, beside the input.

    Notes
    -----
    Quarto's ``renderProject`` (``src/command/render/project.ts``) moves each rendered file
    to ``join(outputDir, file)``, ``file`` being relative to the project folder; a file outside
    the project's ``render`` list is rendered as a single document, next to its source.
    """
    qmd = Path(qmd).resolve()
    project = _quarto_project(qmd)
    if project is None:
        return qmd.parent / name
    config_file = project / "_quarto.yml"
    if not config_file.is_file():
        config_file = project / "_quarto.yaml"
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RenderError(f"cannot read {config_file}: {exc}") from exc
    settings = config.get("project") if isinstance(config, dict) else None
    settings = settings if isinstance(settings, dict) else {}
    output_dir = settings.get("output-dir")
    relative = qmd.relative_to(project)
    targets = settings.get("render")
    targets = [targets] if isinstance(targets, str) else targets
    in_project = targets is None or any(
        fnmatch.fnmatch(relative.as_posix(), str(t)) for t in targets if not str(t).startswith("!")
    )
    if not output_dir or not in_project:
        return qmd.parent / name
    return project / str(output_dir) / relative.parent / name


def _remove_empty_folders(folder: Path, *, stop: Path | None) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) ``stop``."""
    if stop is None:
        return
    folder, stop = folder.resolve(), stop.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()  # only ever an empty folder: published reports are never touched
        except OSError:
            return
        folder = folder.parent


def render_report(
    qmd: Path,
    out_dir: Path,
    *,
    formats: tuple[str, ...] = FORMATS,
    renderer: str = "auto",
    stem: str | None = None,
) -> RenderResult:
    """Render with Quarto when ``renderer`` is "quarto" or "auto" and quarto is on PATH,
    otherwise with the offline renderer."""
    if renderer not in ("auto", "quarto", "offline"):
        raise ValueError(f"renderer must be one of auto, quarto, offline; got {renderer!r}")
    use_quarto = renderer == "quarto" or (renderer == "auto" and shutil.which("quarto"))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if use_quarto:
        return render_quarto(qmd, out_dir, formats=formats, stem=stem)
    return render_offline(qmd, out_dir, formats=formats, stem=stem)


def _check_formats(formats: tuple[str, ...]) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}; got {', '.join(formats)}")
