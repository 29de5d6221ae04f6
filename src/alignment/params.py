"""Parameters of a quarter's report and of each study, read from YAML and validated.

A params file is data written by people: it is read with ``yaml.safe_load`` only, unknown keys
and wrong types are refused with a message naming the file and the key, and every path in it
must stay inside the project root or a declared data root (``ALIGNMENT_DATA_ROOTS``), so a
shared params file cannot make a run read or write elsewhere.

Paths come from one place, this module: :func:`project_root` is worked out from the package's
location (an editable install or a checkout), never from the working directory, unless
``ALIGNMENT_PROJECT_ROOT`` says otherwise.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

log = logging.getLogger(__name__)

STUDIES: tuple[str, ...] = (
    "funnel_sla",
    "lead_scoring",
    "attribution",
    "asset_usage",
    "conversion_lift",
)
"""The study notebooks, in report order; each is ``notebooks/<name>.ipynb``."""

QUARTER_PATTERN = re.compile(r"^(?P<year>\d{4})Q(?P<q>[1-4])$")


class ParamsError(ValueError):
    """A params file that cannot be used: which file, which key, what is wrong."""

    def __init__(self, file: str, problems: tuple[str, ...]) -> None:
        super().__init__(file, tuple(problems))
        self.file, self.problems = file, tuple(problems)

    def __str__(self) -> str:
        return f"{self.file}: " + "; ".join(self.problems)


@dataclass(frozen=True, slots=True, order=True)
class Quarter:
    """A calendar quarter, e.g. ``Quarter.parse("2026Q3")``; bounds are UTC, end exclusive.

    Examples
    --------
    >>> q = Quarter.parse("2026Q1")
    >>> str(q.previous()), q.start_at.isoformat(), q.end_at.isoformat()
    ('2025Q4', '2026-01-01T00:00:00+00:00', '2026-04-01T00:00:00+00:00')
    """

    year: int
    q: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """Parse ``YYYYQn`` (n in 1..4); raise ``ValueError`` naming the text otherwise."""
        match = QUARTER_PATTERN.match(str(text).strip())
        if match is None:
            raise ValueError(f"quarter {text!r} is not of the form YYYYQn, e.g. 2026Q3")
        return cls(int(match["year"]), int(match["q"]))

    @classmethod
    def containing(cls, moment: datetime) -> Quarter:
        """The quarter that contains ``moment`` (taken as UTC when naive)."""
        return cls(moment.year, (moment.month - 1) // 3 + 1)

    @property
    def start_at(self) -> datetime:
        """First instant of the quarter (UTC, included)."""
        return datetime(self.year, 3 * (self.q - 1) + 1, 1, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        """First instant after the quarter (UTC, excluded)."""
        return self.next().start_at

    def next(self) -> Quarter:
        """The quarter after this one."""
        return Quarter(self.year + (self.q == 4), self.q % 4 + 1)

    def previous(self, n: int = 1) -> Quarter:
        """The quarter ``n`` quarters before this one."""
        index = self.year * 4 + (self.q - 1) - n
        return Quarter(index // 4, index % 4 + 1)

    def __str__(self) -> str:
        return f"{self.year}Q{self.q}"


def project_root() -> Path:
    """The project folder: ``ALIGNMENT_PROJECT_ROOT``, else the checkout this package sits in.

    The checkout is the nearest ancestor of the package holding ``pyproject.toml``; for a
    package installed elsewhere (no checkout), the working directory is the fallback.
    """
    override = os.environ.get("ALIGNMENT_PROJECT_ROOT")
    if override:
        return Path(override).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "alignment").is_dir():
            return parent
    return Path.cwd().resolve()


def data_roots() -> tuple[Path, ...]:
    """Folders that params may point into: the project root and ``ALIGNMENT_DATA_ROOTS``.

    ``ALIGNMENT_DATA_ROOTS`` holds extra folders separated by ``os.pathsep`` (``:`` on Unix),
    for exports kept outside the project.
    """
    extra = [
        Path(p).resolve()
        for p in os.environ.get("ALIGNMENT_DATA_ROOTS", "").split(os.pathsep)
        if p
    ]
    return (project_root(), *extra)


def resolve_inside_roots(path: str | Path, *, key: str) -> Path:
    """Resolve ``path`` and refuse one outside the roots.

    A relative path is resolved against the project root. Raises ``ValueError`` naming
    ``key`` when the resolved path (symlinks followed) escapes every root of
    :func:`data_roots`.
    """
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = project_root() / candidate
    resolved = candidate.resolve()
    roots = data_roots()
    if not any(resolved == root or root in resolved.parents for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise ValueError(
            f"{key} {str(path)!r} points outside the project and data roots ({shown}); "
            "add its folder to ALIGNMENT_DATA_ROOTS to allow it"
        )
    return resolved


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Definitions(_Strict):
    """The shared stage definitions, printed verbatim in the report's glossary."""

    MQL: str = Field(min_length=1)
    SAL: str = Field(min_length=1)
    SQL: str = Field(min_length=1)
    SLA: str = Field(min_length=1)
    attribution_window: str = Field(min_length=1)


class FunnelParams(_Strict):
    """Funnel and hand-off settings (hours and days are elapsed UTC time unless stated)."""

    sla_hours: float = Field(24.0, gt=0, description="MQL to first sales touch, in hours")
    business_hours: bool = Field(True, description="count the SLA in business hours (Mon-Fri)")
    sla_hours_by_segment: dict[Literal["SMB", "MM", "ENT"], float] = Field(default_factory=dict)
    sal_window_days: int = Field(30, gt=0)
    sql_window_days: int = Field(90, gt=0)
    won_window_days: int = Field(180, gt=0)


class AttributionParams(_Strict):
    """Attribution settings: journeys, conversion event, models, Markov order, bootstrap."""

    lookback_days: int = Field(
        90, gt=0, description="touches older than this before conversion are dropped"
    )
    conversion_event: Literal["SQL", "Opportunity", "won"] = "SQL"
    unit: Literal["person", "account"] = "person"
    models: tuple[str, ...] = (
        "first_touch",
        "last_touch",
        "linear",
        "u_shaped",
        "w_shaped",
        "time_decay",
        "full_path",
        "j_shaped",
        "inverse_j",
        "markov",
        "shapley",
    )
    markov_order: int = Field(1, ge=1, le=4)
    shapley_game: Literal["conversion_rate", "conversions"] = Field(
        "conversion_rate",
        description="Shapley worth of a channel set: its journeys' conversion rate, or count",
    )
    time_decay_half_life_days: float = Field(7.0, gt=0)
    bootstrap_replicates: int = Field(200, ge=0, le=10_000)
    split_mixed_channels: bool = Field(
        True,
        description=(
            "credit the sales touches of a channel that also has marketing touches as a "
            "channel of their own, '<channel> (sales)', so the sales split is exact per touch"
        ),
    )


class AssetParams(_Strict):
    """Content-asset settings."""

    stale_days: int = Field(365, gt=0, description="not updated for this many days: stale")
    visit_gap_minutes: float = Field(10.0, gt=0)


class ScoringParams(_Strict):
    """Lead-scoring settings.

    There is no setting for the current MQL rule: the rule judged is what the CRM recorded,
    each lead's first ``MQL`` stage event (``alignment.scoring``), and its wording is
    ``definitions.MQL``, printed verbatim in the lead-quality section.
    """

    outcome_stage: Literal["SQL", "Opportunity", "Customer"] = "SQL"
    outcome_window_days: int = Field(90, gt=0)
    regularisation: float = Field(1.0, ge=0)
    score_horizon_days: int = Field(
        90, gt=0, description="a lead not MQL within this many days of creation is scored then"
    )
    feature_lookback_days: int = Field(
        90, gt=0, description="touches older than this before the scoring instant are not counted"
    )
    bootstrap_replicates: int = Field(500, ge=0, le=10_000)
    max_late_share: float = Field(
        0.05, ge=0, lt=1, description="share of the leads sent that may miss the SLA"
    )


class LiftParams(_Strict):
    """Which experiments and roll-outs the lift section reports (empty: every one found)."""

    experiments: tuple[str, ...] = ()
    alpha: float = Field(0.05, gt=0, lt=1)
    segments: tuple[str, ...] = ("segment", "region")
    correction: Literal["holm", "fdr_bh"] = "holm"


class ReportParams(_Strict):
    """One quarter's report: ``params/<QUARTER>.yaml``.

    Examples
    --------
    >>> p = ReportParams(quarter="2026Q3", definitions=dict(MQL="a", SAL="b", SQL="c", SLA="d",
    ...                  attribution_window="e"))
    >>> str(p.report_quarter), [str(q) for q in p.compared_quarters]
    ('2026Q3', ['2026Q2', '2026Q1', '2025Q4'])
    """

    quarter: str
    previous_quarters: int = Field(3, ge=0, le=12, description="quarters compared in the summary")
    data: str = "data/demo"
    engine: Literal["duckdb", "spark"] = "duckdb"
    studies: tuple[str, ...] = STUDIES
    definitions: Definitions
    funnel: FunnelParams = FunnelParams()
    attribution: AttributionParams = AttributionParams()
    assets: AssetParams = AssetParams()
    scoring: ScoringParams = ScoringParams()
    lift: LiftParams = LiftParams()

    @field_validator("quarter")
    @classmethod
    def _quarter_parses(cls, value: str) -> str:
        Quarter.parse(value)
        return value

    @field_validator("studies")
    @classmethod
    def _studies_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in value if s not in STUDIES]
        if unknown:
            raise ValueError(f"unknown studies {unknown}; known: {list(STUDIES)}")
        return value

    @field_validator("data")
    @classmethod
    def _data_inside_roots(cls, value: str) -> str:
        resolve_inside_roots(value, key="data")
        return value

    @property
    def report_quarter(self) -> Quarter:
        return Quarter.parse(self.quarter)

    @property
    def compared_quarters(self) -> tuple[Quarter, ...]:
        """The previous quarters compared with the report quarter, most recent first."""
        q = self.report_quarter
        return tuple(q.previous(i) for i in range(1, self.previous_quarters + 1))

    @property
    def data_path(self) -> Path:
        """``data`` resolved against the project root (checked to stay inside the roots)."""
        return resolve_inside_roots(self.data, key="data")


class StudyParams(_Strict):
    """One study run on its own (``alignment run PARAMS.yaml``): a notebook and its parameters.

    ``parameters`` are injected into the notebook's ``parameters`` cell by Papermill; every
    name must exist there (checked when the notebook is known).
    """

    notebook: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    output: str | None = Field(None, description="folder for the executed notebook and tables")

    @field_validator("notebook")
    @classmethod
    def _notebook_known(cls, value: str) -> str:
        name = Path(value).stem
        if name not in STUDIES:
            raise ValueError(f"unknown notebook {value!r}; known: {list(STUDIES)}")
        return name

    @model_validator(mode="after")
    def _paths_inside_roots(self) -> StudyParams:
        if self.output is not None:
            resolve_inside_roots(self.output, key="output")
        for key, value in self.parameters.items():
            if _is_path_parameter(key, value):
                resolve_inside_roots(value, key=f"parameters.{key}")
        return self

    def notebook_parameters(self) -> dict[str, Any]:
        """``parameters`` as Papermill injects them: path parameters (names ending in
        ``_dir``, ``_path``, ``_file``) made absolute against the project root, so a relative
        path means the same in the YAML and in the notebook, which runs in ``notebooks/``."""
        return {
            key: str(resolve_inside_roots(value, key=f"parameters.{key}"))
            if _is_path_parameter(key, value)
            else value
            for key, value in self.parameters.items()
        }


def _is_path_parameter(key: str, value: Any) -> bool:
    return key.endswith(("_dir", "_path", "_file")) and isinstance(value, str) and bool(value)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; refuse anything that is not a mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError(str(path), (f"not UTF-8 text (byte {exc.start})",)) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ParamsError(str(path), (f"{where}{problem}",)) from None
    if not isinstance(loaded, dict):
        raise ParamsError(str(path), ("expected a mapping of keys to values at the top level",))
    return loaded


def _problems(error: ValidationError) -> tuple[str, ...]:
    out = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        out.append(f"{key}: {message}")
    return tuple(out)


def load_report_params(path: str | Path) -> ReportParams:
    """Load and validate ``params/<QUARTER>.yaml``.

    Raises :class:`ParamsError` listing every problem.
    """
    raw = read_yaml(path)
    try:
        return ReportParams.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(str(path), _problems(exc)) from None


def load_study_params(path: str | Path) -> StudyParams:
    """Load and validate a study's params YAML.

    Raises :class:`ParamsError` listing every problem.
    """
    raw = read_yaml(path)
    try:
        return StudyParams.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(str(path), _problems(exc)) from None


def latest_complete_quarter(now: datetime | None = None) -> Quarter:
    """The last quarter that has ended by ``now`` (default: the current UTC time)."""
    now = now or datetime.now(UTC)
    return Quarter.containing(now).previous()


def flatten(values: dict[str, Any], prefix: str = "") -> Any:
    """Nested params as a two-column frame ``parameter, value`` (dotted keys), for the appendix.

    Examples
    --------
    >>> flatten({"funnel": {"sla_hours": 24.0}, "quarter": "2026Q3"}).values.tolist()
    [['funnel.sla_hours', '24.0'], ['quarter', '2026Q3']]
    """
    import pandas as pd

    def walk(node: Any, path: str) -> list[tuple[str, str]]:
        if isinstance(node, dict):
            return [row for key, value in node.items() for row in walk(value, f"{path}{key}.")]
        if isinstance(node, (list, tuple)):
            return [(path.rstrip("."), ", ".join(map(str, node)))]
        return [(path.rstrip("."), str(node))]

    return pd.DataFrame(walk(values, prefix), columns=["parameter", "value"])
