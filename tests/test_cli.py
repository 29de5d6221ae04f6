"""The `alignment` command line: exit codes, one-line errors, output on the right stream.

Subprocess runs check the installed entry point the way a user meets it; CliRunner runs check
the rest quickly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignment.cli import app

CORPUS = Path(__file__).parent / "data" / "bad"
runner = CliRunner()


def test_validate_clean_folder_prints_one_line_per_table_and_exits_0() -> None:
    result = runner.invoke(app, ["validate", str(CORPUS / "good")])
    assert result.exit_code == 0, result.output
    assert "accounts.csv: 3 rows, 6 columns" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 11  # every contract table of `good`


def test_validate_lists_every_problem_on_stderr_and_exits_1() -> None:
    result = runner.invoke(app, ["validate", str(CORPUS / "three_problems")])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert "touchpoints.csv, column touch_id, rows 5, 6: breaks unique" in result.stderr
    assert result.stdout == ""


def test_validate_with_quirks_warns_and_exits_0() -> None:
    result = runner.invoke(app, ["validate", str(CORPUS / "quirks")])
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "stage_out_of_order" in result.stderr


@pytest.mark.parametrize(("case", "code"), [("good", 0), ("three_problems", 1), ("quirks", 0)])
def test_validate_progress_leaves_stdout_and_exit_code_unchanged(
    case: str, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from alignment import cli

    folder = CORPUS / case
    quiet = runner.invoke(app, ["validate", str(folder)])
    assert quiet.exit_code == code
    assert "checked" not in quiet.stderr and "checking" not in quiet.stderr  # small, no tty

    monkeypatch.setattr(cli, "LARGE_DATA_BYTES", 0)  # as if the data were large
    large = runner.invoke(app, ["validate", str(folder)])
    assert (large.exit_code, large.stdout) == (code, quiet.stdout)
    steps = [line.split()[1] for line in large.stderr.splitlines() if line.startswith("checked")]
    # one line per table file as it is checked, then the cross-table steps
    assert sorted(steps[:-2]) == sorted(p.name for p in folder.iterdir())
    assert steps[-2:] == ["references", "warnings"]
    # the report lines on stderr (errors, warnings) are all still there, in the same order
    report_lines = [line for line in large.stderr.splitlines() if not line.startswith("checked")]
    assert report_lines == quiet.stderr.splitlines()

    monkeypatch.setattr(cli, "stderr", Console(stderr=True, force_terminal=True, width=100))
    live = runner.invoke(app, ["validate", str(folder)])
    assert (live.exit_code, live.stdout) == (code, quiet.stdout)


def test_validate_progress_names_the_tables_of_a_duckdb_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alignment import cli, store

    database = store.load_into_duckdb(CORPUS / "good", tmp_path / "crm.duckdb", validate=False)
    quiet = runner.invoke(app, ["validate", str(database)])
    monkeypatch.setattr(cli, "LARGE_DATA_BYTES", 0)
    large = runner.invoke(app, ["validate", str(database)])
    assert (large.exit_code, large.stdout) == (0, quiet.stdout)
    assert "checked crm.duckdb/touchpoints in" in large.stderr


def test_missing_data_folder_is_one_line_and_exit_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alignment.cli", "validate", "/no/such/folder"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no such file or folder: /no/such/folder"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["demo", "--out", "x", "--scale", "huge"], 2),
        (["report", "--format", "docx"], 2),
        (["report", "--engine", "oracle"], 2),
        (["validate"], 2),
        (["no-such-command"], 2),
        (["report", "--quarter", "2026Q9"], 1),
    ],
)
def test_usage_errors_exit_2_and_user_errors_exit_1(args: list[str], code: int) -> None:
    assert runner.invoke(app, args).exit_code == code


def test_report_with_a_missing_params_file_says_which(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1
    assert "none.yaml" in result.stderr


@pytest.mark.parametrize(
    ("installed", "java_home", "message"),
    [
        (False, None, "engine spark: pyspark is not installed; install the spark extra: "
         "pip install '.[spark]'"),
        (True, "/no/such/jdk", "engine spark: JAVA_HOME=/no/such/jdk has no bin/java; "
         "set JAVA_HOME to a Java 17 installation (or put `java` on PATH)"),
    ],
    ids=["no-pyspark", "no-java"],
)  # fmt: skip
def test_report_engine_spark_that_cannot_start_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, pretend_pyspark, installed: bool, java_home: str | None,
    message: str,
) -> None:
    pretend_pyspark(installed)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    if java_home:
        monkeypatch.setenv("JAVA_HOME", java_home)
    result = runner.invoke(app, ["report", "--quarter", "2026Q3", "--engine", "spark"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {message}"
    assert result.stdout == ""


def test_report_engine_spark_without_java_has_no_traceback_in_a_real_run() -> None:
    import importlib.util
    import os

    result = subprocess.run(
        [sys.executable, "-m", "alignment.cli", "report", "--quarter", "2026Q3",
         "--engine", "spark"],
        capture_output=True, text=True,
        env={**os.environ, "JAVA_HOME": "/no/such/jdk"},
    )  # fmt: skip
    assert result.returncode == 1
    hint = "set JAVA_HOME" if importlib.util.find_spec("pyspark") else "install the spark extra"
    assert hint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_run_refuses_an_unknown_notebook(tmp_path: Path) -> None:
    params = tmp_path / "study.yaml"
    params.write_text("notebook: horoscope\n", encoding="utf-8")
    result = runner.invoke(app, ["run", str(params)])
    assert result.exit_code == 1
    assert "unknown notebook 'horoscope'" in result.stderr


@pytest.mark.parametrize(
    "command", ["demo", "validate", "report", "run", "attribute", "lift", "did", "power"]
)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_report_that_cannot_render_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from alignment import pipeline, render

    def build_report(*args: object, **kwargs: object) -> None:
        raise render.RenderError(
            "typst could not compile the PDF: error: unknown variable: tbl\n  ┌─ report.typ:12:3"
        )

    monkeypatch.setattr(pipeline, "build_report", build_report)
    result = runner.invoke(app, ["report", "--quarter", "2026Q3"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: typst could not compile the PDF: error: unknown variable: tbl ┌─ report.typ:12:3"
    )
    assert result.stdout == ""
