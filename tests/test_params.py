"""alignment.params: quarters, params files, and paths that must stay inside the roots."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from alignment.params import (
    QUARTER_PATTERN,
    STUDIES,
    ParamsError,
    Quarter,
    latest_complete_quarter,
    load_report_params,
    load_study_params,
    project_root,
)

DEFINITIONS = {
    "MQL": "three touches",
    "SAL": "accepted by an SDR",
    "SQL": "qualified by sales",
    "SLA": "24 business hours",
    "attribution_window": "90 days",
}


def write_yaml(folder: Path, payload: object, name: str = "p.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(payload), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026Q3", "2026-07-01", "2026-10-01"),
        ("2026Q4", "2026-10-01", "2027-01-01"),
        ("2025Q1", "2025-01-01", "2025-04-01"),
    ],
)
def test_quarter_bounds_are_utc_and_end_exclusive(text: str, start: str, end: str) -> None:
    q = Quarter.parse(text)
    assert q.start_at == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert q.end_at == datetime.fromisoformat(end).replace(tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026Q5", "2026-Q3", "Q3 2026", "26Q1", "", "2026q0"])
def test_quarter_that_does_not_parse_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="YYYYQn"):
        Quarter.parse(text)


def test_previous_quarter_crosses_the_year() -> None:
    assert str(Quarter.parse("2026Q1").previous()) == "2025Q4"
    assert str(Quarter.parse("2026Q3").previous(6)) == "2025Q1"
    assert Quarter.parse("2025Q4").next() == Quarter.parse("2026Q1")


def test_latest_complete_quarter_is_the_one_before_now() -> None:
    assert str(latest_complete_quarter(datetime(2026, 11, 25, tzinfo=UTC))) == "2026Q3"
    assert str(latest_complete_quarter(datetime(2026, 1, 1, tzinfo=UTC))) == "2025Q4"


def test_example_params_file_loads() -> None:
    params = load_report_params(project_root() / "params" / "2026Q3.yaml")
    assert str(params.report_quarter) == "2026Q3"
    assert [str(q) for q in params.compared_quarters] == ["2026Q2", "2026Q1", "2025Q4"]
    assert params.data_path == project_root() / "data" / "demo"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "colour: unknown key"),
        ({"quarter": "2026Q7"}, "quarter: quarter '2026Q7' is not of the form YYYYQn"),
        ({"previous_quarters": "three"}, "previous_quarters: Input should be a valid integer"),
        ({"funnel": {"sla_hours": -4}}, "funnel.sla_hours: Input should be greater than 0"),
        ({"studies": ["funnel_sla", "astrology"]}, "unknown studies ['astrology']"),
        ({"data": "../../etc"}, "data '../../etc' points outside the project and data roots"),
        ({"data": "/tmp"}, "data '/tmp' points outside the project and data roots"),
        ({"engine": "oracle"}, "engine: Input should be 'duckdb' or 'spark'"),
    ],
)
def test_bad_report_params_are_refused_naming_the_key(
    tmp_path: Path, change: dict, message: str
) -> None:
    payload = {"quarter": "2026Q3", "definitions": DEFINITIONS, **change}
    path = write_yaml(tmp_path, payload)
    with pytest.raises(ParamsError) as caught:
        load_report_params(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"quarter": "nope", "colour": 1, "definitions": DEFINITIONS})
    with pytest.raises(ParamsError) as caught:
        load_report_params(path)
    assert len(caught.value.problems) == 2


def test_missing_definition_is_refused(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"quarter": "2026Q3", "definitions": {"MQL": "x"}})
    with pytest.raises(ParamsError, match="definitions.SAL: Field required"):
        load_report_params(path)


def test_data_root_from_environment_is_allowed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ALIGNMENT_DATA_ROOTS", str(tmp_path))
    export = tmp_path / "export"
    path = write_yaml(
        tmp_path, {"quarter": "2026Q3", "definitions": DEFINITIONS, "data": str(export)}
    )
    assert load_report_params(path).data_path == export.resolve()


def test_symlink_out_of_the_project_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ALIGNMENT_PROJECT_ROOT", str(tmp_path / "project"))
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    path = write_yaml(
        tmp_path, {"quarter": "2026Q3", "definitions": DEFINITIONS, "data": "escape"}
    )
    with pytest.raises(ParamsError, match="points outside"):
        load_report_params(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quarter: [unclosed", "line 1"),
        ("- just\n- a list\n", "expected a mapping"),
        ("!!python/object/apply:os.system ['echo hi']", "could not determine a constructor"),
    ],
)
def test_yaml_that_is_not_a_params_mapping_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match=message.replace("[", r"\[")):
        load_report_params(path)


def test_study_params_name_a_known_notebook(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path, {"notebook": "notebooks/conversion_lift.ipynb", "parameters": {"alpha": 0.1}}
    )
    assert load_study_params(path).notebook == "conversion_lift"
    bad = write_yaml(tmp_path, {"notebook": "horoscope"}, name="bad.yaml")
    with pytest.raises(ParamsError, match="unknown notebook 'horoscope'"):
        load_study_params(bad)


def test_study_parameter_paths_stay_inside_the_roots(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"notebook": "funnel_sla", "parameters": {"data_dir": "/etc"}})
    with pytest.raises(ParamsError, match="parameters.data_dir '/etc' points outside"):
        load_study_params(path)


def test_relative_study_paths_are_injected_absolute_against_the_project_root(
    tmp_path: Path,
) -> None:
    path = write_yaml(
        tmp_path,
        {"notebook": "funnel_sla", "parameters": {"data_dir": "data/demo", "sla_hours": 8}},
    )
    injected = load_study_params(path).notebook_parameters()
    assert injected == {"data_dir": str(project_root() / "data" / "demo"), "sla_hours": 8}


# --------------------------------------------------------------------------------------------
# the committed study params files: each names a notebook, and passes only its parameters

PARAMS_DIR = project_root() / "params"
STUDY_FILES = sorted(p for p in PARAMS_DIR.glob("*.yaml") if not QUARTER_PATTERN.match(p.stem))
ANNOTATION_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),  # YAML 24 for a float parameter is fine
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
}


def notebook_parameters(notebook: Path) -> dict[str, str]:
    """Names and annotations (``"int"``, ...) of the notebook's ``parameters`` cell, read with
    ``ast`` (no kernel, no papermill import: the same names ``papermill.inspect_notebook``
    reports for our cells, which are all ``name: type = default``)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name}: expected one cell tagged parameters"
    found = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        assert isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name), (
            f"{notebook.name}: parameters cell line {node.lineno} is not `name: type = value`"
        )
        found[node.target.id] = ast.unparse(node.annotation)
    return found


def study_file_problems(path: Path) -> list[str]:
    """What is wrong with a study params file beyond what :class:`StudyParams` checks: a
    parameter the notebook does not declare, or of another type than its annotation."""
    study = load_study_params(path)
    notebook = project_root() / "notebooks" / f"{study.notebook}.ipynb"
    if not notebook.is_file():
        return [f"names {study.notebook}, which does not exist"]
    declared = notebook_parameters(notebook)
    problems = [
        f"{key} is not a parameter of {notebook.name}"
        for key in study.parameters
        if key not in declared
    ]
    # `alignment run` sets output_dir itself (the study's build folder): a value here would be
    # silently replaced; the file's `output` key is the way to choose the folder.
    if "output_dir" in study.parameters:
        problems.append("output_dir is set by `alignment run`; use the `output` key")
    for key, value in study.parameters.items():
        allowed = ANNOTATION_TYPES.get(declared.get(key, ""), (object,))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            problems.append(f"{key} = {value!r} is not of type {declared[key]}")
    return problems


def test_there_is_a_study_params_file_per_study() -> None:
    assert {p.stem for p in STUDY_FILES} == set(STUDIES)


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.name)
def test_study_params_file_loads_and_passes_only_parameters_of_its_notebook(path: Path) -> None:
    assert study_file_problems(path) == []
    study = load_study_params(path)
    if "quarter" in study.parameters:
        Quarter.parse(study.parameters["quarter"])
    if "params_file" in study.parameters:
        load_report_params(study.notebook_parameters()["params_file"])


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"top_nn": 15}, "top_nn is not a parameter of asset_usage.ipynb"),
        ({"top_n": "15"}, "top_n = '15' is not of type int"),
        ({"top_n": True}, "top_n = True is not of type int"),
        ({"output_dir": "reports"}, "output_dir is set by `alignment run`"),
    ],
)
def test_study_params_check_catches_typos_and_wrong_types(
    tmp_path: Path, parameters: dict, problem: str
) -> None:
    path = write_yaml(tmp_path, {"notebook": "asset_usage", "parameters": parameters})
    assert any(p.startswith(problem) for p in study_file_problems(path))
