"""alignment.schema: the data contract, reading, and validation that reports every problem.

The bad-input corpus (tests/data/bad/<case>/, written by tests/data/make_bad_corpus.py) breaks
one valid dataset in one way per case; each test below states the exact errors expected:
(file, column, rows, rule). Rows are 1-based data rows, as in the file.
"""

from __future__ import annotations

import gzip
import pickle
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from alignment import schema
from alignment.schema import DataError, DataWarning, validate_folder

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ENGINES = {"pandera": schema.BIG_TABLE_ROWS, "duckdb": 0}  # big_rows=0: every table via SQL

# case -> every error expected, as (file, column, rows, rule)
EXPECTED_ERRORS: dict[str, set[tuple]] = {
    "good": set(),
    "formula_text": set(),
    "quirks": set(),
    "raw_email": set(),
    "empty_optional": set(),
    "missing_column": {("accounts.csv", "segment", (), "required_column")},
    "wrong_type": {("touchpoints.csv", "ts", (3,), "is_timestamp")},
    "duplicate_ids": {("people.csv", "person_id", (3, 5), "unique")},
    "dangling_foreign_key": {("touchpoints.csv", "person_id", (5,), "exists_in_people")},
    "dangling_asset_event_refs": {
        ("asset_events.csv", "account_id", (1,), "exists_in_accounts"),
        ("asset_events.csv", "person_id", (2,), "exists_in_people"),
        ("asset_events.csv", "opp_id", (3,), "exists_in_opportunities"),
    },
    "dangling_assignment_units": {
        ("assignments.csv", "unit_id", (4,), "exists_in_accounts"),
        ("assignments.csv", "unit_id", (6,), "exists_in_users"),
        ("assignments.csv", "unit_id", (9,), "exists_in_accounts_or_users"),
        ("assignments.csv", "unit_id", (10,), "exists_in_people"),
    },
    "future_timestamp": {("stage_events.csv", "entered_at", (3,), "not_in_future")},
    "before_created_at": {
        ("opportunities.csv", "closed_at", (1,), "closed_at_not_before_created_at")
    },
    "null_required": {("stage_events.csv", "stage", (4,), "not_null")},
    "unhashed_email": {("people.csv", "email_hash", (2,), "email_is_hashed")},
    "three_problems": {
        ("accounts.csv", "segment", (2,), "allowed_values"),
        ("opportunities.csv", "amount", (2,), "non_negative"),
        ("touchpoints.csv", "touch_id", (5, 6), "unique"),
    },
    "empty_file": {("stage_events.csv", None, (), "has_rows")},
    "header_only": {("opportunities.csv", None, (), "has_rows")},
    "missing_table": {("opportunities", None, (), "required_table")},
    "non_utf8": {("people.csv", None, (3,), "utf8_encoding")},
}

# case -> every warning expected, as (file, column, rule, count)
EXPECTED_WARNINGS: dict[str, set[tuple]] = {
    "quirks": {
        ("stage_events.csv", "entered_at", "stage_out_of_order", 1),
        ("stage_events.csv", None, "duplicate_stage_event", 1),
        ("stage_events.csv", "entered_at", "tied_stage_timestamp", 1),
        ("touchpoints.csv", "user_id", "sales_touch_without_user", 1),
    },
    "before_created_at": {("touchpoints.csv", "ts", "touch_before_person_created", 1)},
    "raw_email": {("people.csv", "email", "raw_email_hashed", 3)},
    "formula_text": {
        ("accounts.csv", "name", "formula_like_text", 1),
        ("people.csv", "persona", "formula_like_text", 1),
        ("campaigns.csv", "name", "formula_like_text", 1),
        ("assets.csv", "title", "formula_like_text", 1),
    },
}


def error_keys(report: schema.ValidationReport) -> set[tuple]:
    return {e.key for e in report.errors}


def warning_keys(report: schema.ValidationReport) -> set[tuple]:
    return {(w.file, w.column, w.rule, w.count) for w in report.warnings}


def test_corpus_on_disk_is_what_the_script_writes(corpus, tmp_path):
    # The committed corpus must be reproducible from the committed script.
    corpus.write_corpus(tmp_path)
    for folder in sorted(tmp_path.iterdir()):
        for file in sorted(folder.iterdir()):
            committed = schema_corpus_file(folder.name, file.name)
            assert committed.read_bytes() == file.read_bytes(), f"{folder.name}/{file.name}"
    assert {p.name for p in tmp_path.iterdir()} == set(EXPECTED_ERRORS)


def schema_corpus_file(case: str, name: str) -> Path:
    return Path(__file__).parent / "data" / "bad" / case / name


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("case", sorted(EXPECTED_ERRORS))
def test_corpus_case_gives_exactly_its_errors_and_warnings(bad_corpus, case, engine):
    report = validate_folder(bad_corpus / case, now=NOW, big_rows=ENGINES[engine])
    assert error_keys(report) == EXPECTED_ERRORS[case]
    assert warning_keys(report) == EXPECTED_WARNINGS.get(case, set())
    assert report.ok == (not EXPECTED_ERRORS[case])


@pytest.mark.parametrize("case", sorted(EXPECTED_ERRORS))
def test_both_engines_give_identical_messages(bad_corpus, case):
    small = validate_folder(bad_corpus / case, now=NOW)
    big = validate_folder(bad_corpus / case, now=NOW, big_rows=0)
    assert small.lines() == big.lines()
    assert {s.engine for s in big.tables.values()} <= {"duckdb", "pandera"}


def test_report_lists_every_problem_at_once(bad_corpus):
    report = validate_folder(bad_corpus / "three_problems", now=NOW)
    assert len(report.errors) == 3
    assert report.error_lines() == [
        "accounts.csv, column segment, rows 2: breaks allowed_values (one of SMB, MM, ENT); "
        "values 'XL'",
        "touchpoints.csv, column touch_id, rows 5, 6: breaks unique; values 'T005'",
        "opportunities.csv, column amount, rows 2: breaks non_negative (>= 0); values -5.0",
    ]


def test_non_utf8_message_names_byte_offset_and_line(bad_corpus):
    (error,) = validate_folder(bad_corpus / "non_utf8", now=NOW).errors
    # Reference: people.csv written by make_bad_corpus.py; the "é" of "Décideur" is byte
    # 0xe9 on line 4 (header + 2 rows before it); offset = bytes of lines 1-3 + "P003,A002,D".
    data = (bad_corpus / "non_utf8" / "people.csv").read_bytes()
    assert str(error).startswith("people.csv, rows 3: breaks utf8_encoding (the file is not UTF-8")
    offset = data.index(bytes([0xE9]))
    assert f"byte 0xe9 at byte offset {offset} on line 4" in str(error)


def test_empty_file_message_is_clear(bad_corpus):
    (error,) = validate_folder(bad_corpus / "empty_file", now=NOW).errors
    assert str(error) == (
        "stage_events.csv: breaks has_rows (the file is empty, 0 bytes; "
        "stage_events is a required table)"
    )


def test_absent_optional_tables_are_listed_not_errors(corpus, good_tables, tmp_path):
    del good_tables["users"], good_tables["assets"]
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert report.ok
    assert report.missing_optional == ("users", "assets")
    assert "users: absent (optional)" in report.lines()


def test_clean_report_has_one_line_per_table(bad_corpus):
    report = validate_folder(bad_corpus / "good", now=NOW)
    assert report.lines()[0] == "accounts.csv: 3 rows, 6 columns"
    assert len(report.lines()) == len(schema.TABLES)
    assert report.tables["touchpoints"] == schema.TableSummary(
        "touchpoints.csv", 6, tuple(schema.contract_columns("touchpoints")), "pandera"
    )


def test_warning_lines_count_with_examples(bad_corpus):
    report = validate_folder(bad_corpus / "quirks", now=NOW)
    assert report.ok
    assert (
        "warning: stage_events.csv, column entered_at: 1 person with stage_out_of_order; "
        "e.g. P001: SAL at 2025-01-20 09:00 before MQL at 2025-01-21 09:00"
    ) in report.lines()


def test_formula_like_text_is_a_counted_warning_with_its_rows(bad_corpus):
    # Reference: make_bad_corpus.formula_text sets one cell per column (rows as listed there).
    report = validate_folder(bad_corpus / "formula_text", now=NOW)
    assert report.ok
    assert report.warning_lines() == [
        "warning: accounts.csv, column name: 1 row with formula_like_text; "
        'e.g. row 1: \'=HYPERLINK("http://evil.example","Click…\'',
        "warning: people.csv, column persona: 1 row with formula_like_text; e.g. row 2: '-2+3'",
        "warning: campaigns.csv, column name: 1 row with formula_like_text; "
        "e.g. row 1: \"+cmd|' /C calc'!A0\"",
        "warning: assets.csv, column title: 1 row with formula_like_text; e.g. row 2: '@SUM(1+1)'",
    ]


def test_formula_like_text_counts_every_row_and_shows_five(corpus, good_tables, tmp_path):
    # 7 campaigns named "+offer n" (rows 3-9) and a channel led by a tab (row 1): the counts
    # are 7 and 1, and at most five examples are shown, the first rows first.
    header = good_tables["campaigns"][0]
    for n in range(7):
        good_tables["campaigns"].append([f"C1{n}", "email", f"+offer {n}", "", "", ""])
    good_tables["campaigns"][1][header.index("channel")] = "\tpaid_search"
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    by_column = {w.column: w for w in report.warnings}
    assert report.ok and set(by_column) == {"name", "channel"}
    assert (by_column["name"].count, by_column["channel"].count) == (7, 1)
    assert by_column["name"].examples == tuple(f"row {n + 3}: '+offer {n}'" for n in range(5))
    assert by_column["channel"].examples == ("row 1: '\\tpaid_search'",)


def test_negative_numbers_and_inner_signs_are_not_formula_text(corpus, good_tables, tmp_path):
    good_tables["campaigns"][1][good_tables["campaigns"][0].index("name")] = "Q1 = best + more"
    good_tables["campaigns"][1][good_tables["campaigns"][0].index("cost")] = "-0"
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert report.ok and report.warnings == ()


def test_no_raw_email_address_in_any_message(bad_corpus):
    for case in ("unhashed_email", "raw_email"):
        report = validate_folder(bad_corpus / case, now=NOW, big_rows=0)
        text = "\n".join(report.lines()) + repr(report.errors) + repr(report.warnings)
        assert "@acme.example" not in text.lower()
        assert "bob.smith" not in text
    (error,) = validate_folder(bad_corpus / "unhashed_email", now=NOW).errors
    assert error.values == ("'b***@***.example'",)


# -- rules one by one, on the good dataset broken in a temporary folder ----------------------


def broken(corpus, tables, tmp_path, table, row, column, value):
    rows = tables[table]
    rows[row][rows[0].index(column)] = value
    return corpus.write_folder(tmp_path / "d", tables)


@pytest.mark.parametrize(
    ("table", "row", "column", "value", "rule"),
    [
        ("users", 2, "capacity_leads_per_week", "forty", "is_number"),
        ("opportunities", 1, "is_won", "maybe", "is_boolean"),
        ("touchpoints", 2, "is_sales_touch", "Y", "is_boolean"),
        ("campaigns", 1, "start_date", "01/02/2025", "is_date"),
        ("opportunities", 2, "created_at", "soon", "is_timestamp"),
        ("users", 1, "team", "finance", "allowed_values"),
        ("stage_events", 2, "stage", "mql", "allowed_values"),
        ("asset_events", 1, "event_type", "click", "allowed_values"),
        ("assignments", 1, "unit_type", "team", "allowed_values"),
        ("campaigns", 2, "cost", "-1", "non_negative"),
        ("users", 3, "capacity_leads_per_week", "-0.5", "non_negative"),
        ("asset_events", 2, "duration_s", "-3", "non_negative"),
        ("asset_events", 2, "pages_total", "0", "positive"),
        ("campaigns", 1, "end_date", "2024-12-31", "end_date_not_before_start_date"),
        ("assets", 1, "updated_at", "2024-10-01T00:00:00Z", "updated_at_not_before_created_at"),
        ("accounts", 3, "region", "", "not_null"),
        ("touchpoints", 4, "is_sales_touch", "", "not_null"),
        ("assets", 2, "title", "", "not_null"),
        ("opportunities", 2, "opp_id", "O001", "unique"),
        ("asset_events", 3, "event_id", "E001", "unique"),
        ("people", 1, "created_at", "2026-01-01T02:00:00Z", "not_in_future"),
    ],
)
@pytest.mark.parametrize("engine", list(ENGINES))
def test_each_rule_names_its_file_column_and_row(
    corpus, good_tables, tmp_path, table, row, column, value, rule, engine
):
    folder = broken(corpus, good_tables, tmp_path, table, row, column, value)
    report = validate_folder(folder, now=NOW, big_rows=ENGINES[engine])
    rows = {e.key[2] for e in report.errors}
    assert {(e.file, e.column, e.rule) for e in report.errors} == {(f"{table}.csv", column, rule)}
    assert row in next(iter(rows))


@pytest.mark.parametrize(
    ("table", "column", "parent"), [(t, c, p) for t, c, p, _ in schema.references()]
)
@pytest.mark.parametrize("engine", list(ENGINES))
def test_every_reference_is_checked(corpus, good_tables, tmp_path, table, column, parent, engine):
    folder = broken(corpus, good_tables, tmp_path, table, 1, column, "ZZZ9")
    report = validate_folder(folder, now=NOW, big_rows=ENGINES[engine])
    assert error_keys(report) == {(f"{table}.csv", column, (1,), f"exists_in_{parent}")}
    assert report.errors[0].values == ("'ZZZ9'",)


def test_reference_rules_match_the_contract():
    assert set(schema.references()) == {
        ("people", "account_id", "accounts", "account_id"),
        ("touchpoints", "person_id", "people", "person_id"),
        ("touchpoints", "account_id", "accounts", "account_id"),
        ("touchpoints", "campaign_id", "campaigns", "campaign_id"),
        ("touchpoints", "user_id", "users", "user_id"),
        ("touchpoints", "asset_id", "assets", "asset_id"),
        ("stage_events", "person_id", "people", "person_id"),
        ("stage_events", "owner_user_id", "users", "user_id"),
        ("opportunities", "account_id", "accounts", "account_id"),
        ("opportunities", "owner_user_id", "users", "user_id"),
        ("opportunity_people", "opp_id", "opportunities", "opp_id"),
        ("opportunity_people", "person_id", "people", "person_id"),
        ("asset_events", "asset_id", "assets", "asset_id"),
        ("asset_events", "user_id", "users", "user_id"),
        ("asset_events", "person_id", "people", "person_id"),
        ("asset_events", "account_id", "accounts", "account_id"),
        ("asset_events", "opp_id", "opportunities", "opp_id"),
    }
    assert schema.typed_references() == [
        ("assignments", "unit_id", "unit_type", "person", (("people", "person_id"),)),
        ("assignments", "unit_id", "unit_type", "account", (("accounts", "account_id"),)),
        ("assignments", "unit_id", "unit_type", "user", (("users", "user_id"),)),
        (
            "assignments",
            "unit_id",
            "unit_type",
            "region",
            (("accounts", "region"), ("users", "region")),
        ),
    ]
    assert {t[3] for t in schema.typed_references()} == set(schema.UNIT_TYPES)


UNIT_CASES = [  # unit_type, a unit that exists, one that does not, rule
    ("person", "P002", "A001", "exists_in_people"),
    ("account", "A003", "P001", "exists_in_accounts"),
    ("user", "U01", "P001", "exists_in_users"),
    ("region", "NA", "LATAM", "exists_in_accounts_or_users"),
]


@pytest.mark.parametrize(("unit_type", "good", "bad", "rule"), UNIT_CASES)
@pytest.mark.parametrize("engine", list(ENGINES))
def test_assignment_unit_exists_in_the_table_of_its_type(
    corpus, good_tables, tmp_path, unit_type, good, bad, rule, engine
):
    good_tables["assignments"][1][1:3] = [unit_type, good]
    good_tables["assignments"][2][1:3] = [unit_type, bad]
    folder = corpus.write_folder(tmp_path / "d", good_tables)
    report = validate_folder(folder, now=NOW, big_rows=ENGINES[engine])
    assert error_keys(report) == {("assignments.csv", "unit_id", (2,), rule)}
    assert report.errors[0].values == (repr(bad),)
    assert report.errors[0].detail.startswith(f"unit_type {unit_type}: no such ")


def test_unit_reference_message(bad_corpus):
    report = validate_folder(bad_corpus / "dangling_assignment_units", now=NOW)
    assert [e.rows for e in report.errors] == [(4,), (6,), (9,), (10,)]  # one column: by row
    lines = {e.rule: str(e) for e in report.errors}
    assert lines["exists_in_accounts_or_users"] == (
        "assignments.csv, column unit_id, rows 9: breaks exists_in_accounts_or_users "
        "(unit_type region: no such accounts.region or users.region); values 'APAC'"
    )
    assert lines["exists_in_people"] == (
        "assignments.csv, column unit_id, rows 10: breaks exists_in_people "
        "(unit_type person: no such people.person_id); values 'A001'"
    )


def test_region_unit_may_be_a_region_of_users_only(corpus, good_tables, tmp_path):
    good_tables["users"][1][good_tables["users"][0].index("region")] = "APAC"
    good_tables["assignments"][1][1:3] = ["region", "APAC"]
    assert validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW).ok
    # Without users, APAC is no region of the data: checked against accounts alone.
    del good_tables["users"]
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert error_keys(report) == {
        ("assignments.csv", "unit_id", (1,), "exists_in_accounts_or_users")
    }
    assert report.errors[0].detail == "unit_type region: no such accounts.region"


def test_reference_into_an_absent_optional_table_is_skipped(corpus, good_tables, tmp_path):
    # A user unit, an event's asset and rep that exist nowhere: no users or assets to check.
    events = good_tables["asset_events"]
    good_tables["assignments"][1][1:3] = ["user", "U99"]
    events[1][events[0].index("asset_id")] = "AS99"
    events[1][events[0].index("user_id")] = "U99"
    del good_tables["users"], good_tables["assets"]
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert report.ok
    assert report.missing_optional == ("users", "assets")


def test_reference_into_a_header_only_required_table_is_not_checked(corpus, good_tables, tmp_path):
    events = good_tables["asset_events"]
    events[3][events[0].index("opp_id")] = "O999"
    header_only = corpus.csv_text(good_tables["opportunities"][:1]).encode()
    folder = corpus.write_folder(tmp_path / "d", good_tables, {"opportunities.csv": header_only})
    report = validate_folder(folder, now=NOW)
    assert error_keys(report) == {("opportunities.csv", None, (), "has_rows")}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_duplicate_experiment_unit_pair_is_caught(corpus, good_tables, tmp_path, engine):
    good_tables["assignments"].append(["X01", "person", "P001", "control", "2025-01-06"])
    good_tables["assignments"].append(["X02", "person", "P001", "control", "2025-01-06"])
    folder = corpus.write_folder(tmp_path / "d", good_tables)
    report = validate_folder(folder, now=NOW, big_rows=ENGINES[engine])
    assert error_keys(report) == {("assignments.csv", "experiment_id+unit_id", (1, 3), "unique")}
    assert report.errors[0].values == ("'X01 / P001'",)


def test_future_is_relative_to_the_current_time_by_default(bad_corpus):
    report = validate_folder(bad_corpus / "future_timestamp")  # 2099 is after any "now"
    assert error_keys(report) == EXPECTED_ERRORS["future_timestamp"]


def test_an_hour_of_slack_before_the_future(corpus, good_tables, tmp_path):
    folder = broken(corpus, good_tables, tmp_path, "people", 1, "created_at", "2026-01-01T00:59Z")
    assert validate_folder(folder, now=NOW).ok


def test_touch_less_than_a_day_before_person_created_is_fine(corpus, good_tables, tmp_path):
    # P001 created 2025-01-10T08:00Z; a touch 23 hours earlier is within the 1-day slack.
    folder = broken(corpus, good_tables, tmp_path, "touchpoints", 1, "ts", "2025-01-09T09:00Z")
    assert validate_folder(folder, now=NOW).warnings == ()


def test_sales_touch_without_user_column_is_a_warning(corpus, good_tables, tmp_path):
    rows = good_tables["touchpoints"]
    i = rows[0].index("user_id")
    good_tables["touchpoints"] = [r[:i] + r[i + 1 :] for r in rows]
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert report.ok
    assert warning_keys(report) == {("touchpoints.csv", "user_id", "sales_touch_without_user", 2)}


def test_recycled_lead_entering_lead_again_is_not_out_of_order(corpus, good_tables, tmp_path):
    good_tables["stage_events"].append(["P001", "Recycled", "2025-01-25T09:00:00Z", "", "timing"])
    good_tables["stage_events"].append(["P001", "Lead", "2025-03-01T09:00:00Z", "", ""])
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert report.ok and report.warnings == ()


def test_quoted_value_spanning_lines_counts_as_one_row(corpus, good_tables, tmp_path):
    good_tables["accounts"][1][1] = "Acme\nCorp, the\nfirst"
    folder = broken(corpus, good_tables, tmp_path, "accounts", 2, "segment", "XL")
    report = validate_folder(folder, now=NOW)
    assert error_keys(report) == {("accounts.csv", "segment", (2,), "allowed_values")}


def test_row_with_wrong_number_of_fields(corpus, good_tables, tmp_path):
    good_tables["users"][2].append("extra")
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert error_keys(report) == {("users.csv", None, (2,), "row_matches_header")}
    assert "4 fields in the header" in report.error_lines()[0]


def test_duplicate_column_name(corpus, good_tables, tmp_path):
    good_tables["users"] = [r + [r[0]] for r in good_tables["users"]]
    report = validate_folder(corpus.write_folder(tmp_path / "d", good_tables), now=NOW)
    assert error_keys(report) == {("users.csv", None, (), "unique_column_names")}


def test_two_files_for_one_table(corpus, good_tables, tmp_path):
    folder = corpus.write_folder(tmp_path / "d", good_tables)
    pd.DataFrame({"user_id": ["U01"], "team": ["sdr"]}).to_parquet(folder / "users.parquet")
    report = validate_folder(folder, now=NOW)
    assert error_keys(report) == {("users", None, (), "one_file_per_table")}


def test_unreadable_parquet(corpus, good_tables, tmp_path):
    del good_tables["users"]
    folder = corpus.write_folder(tmp_path / "d", good_tables)
    (folder / "users.parquet").write_bytes(b"PAR1 this is not parquet")
    report = validate_folder(folder, now=NOW)
    assert error_keys(report) == {("users.parquet", None, (), "readable_parquet")}


def test_corrupt_gzip(corpus, good_tables, tmp_path):
    del good_tables["users"]
    folder = corpus.write_folder(tmp_path / "d", good_tables)
    (folder / "users.csv.gz").write_bytes(gzip.compress(b"user_id,team\nU01,sdr\n")[:-12])
    report = validate_folder(folder, now=NOW)
    assert error_keys(report) == {("users.csv.gz", None, (), "readable_csv")}


def test_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        validate_folder(tmp_path / "nope")
    (tmp_path / "f.csv").write_text("a\n")
    with pytest.raises(NotADirectoryError):
        validate_folder(tmp_path / "f.csv")


# -- reading -----------------------------------------------------------------------------------


def test_read_table_gives_contract_dtypes(bad_corpus):
    frame = schema.read_table(bad_corpus / "good" / "touchpoints.csv")
    assert frame.dtypes.astype(str).to_dict() == {
        "touch_id": "str",
        "person_id": "str",
        "account_id": "str",
        "ts": "datetime64[us, UTC]",
        "channel": "str",
        "campaign_id": "str",
        "touch_type": "str",
        "is_sales_touch": "boolean",
        "user_id": "str",
        "asset_id": "str",
    }
    # "false", "no", "0" and "true", "YES" are flags (any case).
    assert frame["is_sales_touch"].tolist() == [False, False, True, False, True, False]


def test_timestamps_are_utc_and_naive_ones_taken_as_utc(bad_corpus):
    accounts = schema.read_table(bad_corpus / "good" / "accounts.csv")
    assert accounts["created_at"].tolist() == [
        pd.Timestamp("2024-01-15 09:00", tz="UTC"),
        pd.Timestamp("2024-03-02 10:30", tz="UTC"),
        pd.Timestamp("2024-06-20 00:00", tz="UTC"),  # "2024-06-20": no offset -> UTC
    ]
    assert accounts["region"].tolist() == ["EMEA", "NA", "EMEA"]  # "NA" is a region, not null


def test_numeric_looking_ids_stay_text(tmp_path):
    (tmp_path / "users.csv").write_text("user_id,team\n00123,sdr\n7,sales\n")
    assert schema.read_table(tmp_path / "users.csv")["user_id"].tolist() == ["00123", "7"]
    pd.DataFrame({"user_id": [123, 7], "team": ["sdr", "sales"]}).to_parquet(
        tmp_path / "p.parquet"
    )
    frame = schema.read_table(tmp_path / "p.parquet", table="users")
    assert frame["user_id"].tolist() == ["123", "7"]


def test_read_table_raises_data_error_for_bad_value(bad_corpus):
    with pytest.raises(DataError) as info:
        schema.read_table(bad_corpus / "wrong_type" / "touchpoints.csv")
    assert info.value.key == ("touchpoints.csv", "ts", (3,), "is_timestamp")
    with pytest.raises(DataError, match="utf8_encoding"):
        schema.read_table(bad_corpus / "non_utf8" / "people.csv")


def test_read_table_hashes_raw_email_and_drops_it(bad_corpus):
    frame = schema.read_table(bad_corpus / "raw_email" / "people.csv")
    good = schema.read_table(bad_corpus / "good" / "people.csv")
    assert "email" not in frame.columns
    pd.testing.assert_series_equal(frame["email_hash"], good["email_hash"])


def test_csv_gz_and_parquet_read_like_csv(bad_corpus, tmp_path):
    source = bad_corpus / "good" / "asset_events.csv"
    gz = tmp_path / "asset_events.csv.gz"
    gz.write_bytes(gzip.compress(source.read_bytes()))
    expected = schema.read_table(source)
    pd.testing.assert_frame_equal(schema.read_table(gz), expected)
    expected.to_parquet(tmp_path / "asset_events.parquet")
    pd.testing.assert_frame_equal(schema.read_table(tmp_path / "asset_events.parquet"), expected)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_parquet_folder_validates_like_csv_folder(bad_corpus, tmp_path, engine):
    for case in ("good", "three_problems"):
        folder = tmp_path / case
        folder.mkdir()
        for csv_file in (bad_corpus / case).glob("*.csv"):
            frame = schema.read_table(csv_file)
            frame.to_parquet(folder / (csv_file.name[:-4] + ".parquet"))
        report = validate_folder(folder, now=NOW, big_rows=ENGINES[engine])
        expected = {
            (f.replace(".csv", ".parquet"), c, r, rule) for f, c, r, rule in EXPECTED_ERRORS[case]
        }
        assert error_keys(report) == expected


def test_check_frame_on_a_frame_in_memory():
    frame = pd.DataFrame({"user_id": ["U1", "U1"], "team": ["sdr", "boss"]})
    errors = schema.check_frame("users", frame, now=NOW)
    assert [e.key for e in errors] == [
        ("users.csv", "user_id", (1, 2), "unique"),
        ("users.csv", "team", (2,), "allowed_values"),
    ]


# -- the contract page and the models agree ----------------------------------------------------

CONTRACT_PAGE = Path(__file__).parents[1] / "docs" / "data_contract.md"
PAGE_TYPES = {
    "str": "string",
    "timestamp": "timestamp",
    "date": "date",
    "float": "float",
    "bool": "boolean",
}


def contract_rows() -> list[dict[str, str]]:
    rows = []
    for line in CONTRACT_PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in schema.MODELS:
            rows.append(dict(zip(["table", "column", "type", "req", "rules"], cells, strict=True)))
    return rows


def test_models_implement_the_contract_page_exactly():
    rows = contract_rows()
    assert {(r["table"], r["column"]) for r in rows} == {
        (t, c) for t in schema.TABLES for c in schema.contract_columns(t)
    }
    for row in rows:
        table, name, rules = row["table"], row["column"], row["rules"]
        col = schema.MODELS[table].to_schema().columns[name]
        where = f"{table}.{name}"
        assert schema.contract_columns(table)[name] == PAGE_TYPES[row["type"]], where
        assert col.required == row["req"].startswith("req"), where
        assert col.nullable == ("null" in row["req"]), where
        assert col.unique == rules.startswith("unique"), where
        assert bool((col.metadata or {}).get("not_in_future")) == ("not in the future" in rules), (
            where
        )
        target = (col.metadata or {}).get("references", "")
        match = re.search(r"exists in (\w+)", rules)
        assert target.split(".")[0] == (match.group(1) if match else ""), where
        match = re.search(r"by (\w+): (.*)$", rules)  # by unit_type: person → people.person_id
        page_by = {}
        if match:
            pairs = (item.split(" → ") for item in match.group(2).split(", "))
            page_by = {match.group(1): {k: tuple(v.split(" or ")) for k, v in pairs}}
        assert (col.metadata or {}).get("references_by", {}) == page_by, where
        checks = {c.name: c.statistics for c in col.checks}
        match = re.match(r"one of (.*)$", rules)
        if match:
            assert list(checks["isin"]["allowed_values"]) == match.group(1).split(", "), where
        assert ("greater_than_or_equal_to" in checks) == bool(re.search(r">= 0\b", rules)), where
        assert ("greater_than" in checks) == bool(re.search(r"(^|\s)> 0\b", rules)), where


def test_every_check_has_an_sql_translation():
    for table in schema.TABLES:
        model_schema = schema.MODELS[table].to_schema()
        for name, col in model_schema.columns.items():
            for check in col.checks:
                assert schema._sql_check_predicate(name, check)
        for check in model_schema.checks:
            assert schema._PAIR_RULE.fullmatch(check.name), check.name


# -- DataError, DataWarning, output helpers ----------------------------------------------------


def test_data_error_message_format():
    error = DataError("people.csv", "email_hash", [3, 17], "email_is_hashed")
    assert str(error) == "people.csv, column email_hash, rows 3, 17: breaks email_is_hashed"
    many = DataError("t.csv", "ts", range(1, 13), "is_timestamp", ["'x'"], "not ISO", 40)
    assert str(many) == (
        "t.csv, column ts, rows 1, 2, 3, 4, 5 … (40 rows): breaks is_timestamp (not ISO); "
        "values 'x'"
    )
    assert isinstance(error, ValueError)


def test_data_error_survives_pickle():
    error = DataError("people.csv", "email_hash", [3], "email_is_hashed", ["'a@b.com'"], "hex", 9)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.key, copy.values, copy.detail, copy.n_rows, str(copy)) == (
        error.key,
        error.values,
        error.detail,
        error.n_rows,
        str(error),
    )


def test_data_error_masks_email_addresses():
    error = DataError("people.csv", "email", [1], "r", ["'jane.doe@example.com'"], "x@y.org")
    assert "jane.doe@example.com" not in str(error)
    assert str(error).endswith("breaks r (x***@***.org); values 'j***@***.com'")


def test_data_warning_is_frozen_with_at_most_five_examples():
    warning = DataWarning("t.csv", "ts", "quirk", 7, tuple(f"e{i}" for i in range(7)))
    assert warning.examples == ("e0", "e1", "e2", "e3", "e4")
    with pytest.raises(AttributeError):
        warning.count = 1  # type: ignore[misc]


def test_report_raise_for_errors_raises_the_first(bad_corpus):
    report = validate_folder(bad_corpus / "three_problems", now=NOW)
    with pytest.raises(DataError) as info:
        report.raise_for_errors()
    assert info.value is report.errors[0]
    assert report.to_dict()["ok"] is False


def test_neutralise_formulas_prefixes_text_only(bad_corpus):
    accounts = schema.read_table(bad_corpus / "formula_text" / "accounts.csv")
    frame = pd.DataFrame(
        {
            "text": ["=1+1", "+x", "-y", "@z", "\tt", "\rr", "ok", None],
            "number": [-1.0, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    out = schema.neutralise_formulas(frame)
    assert out["text"].tolist()[:7] == ["'=1+1", "'+x", "'-y", "'@z", "'\tt", "'\rr", "ok"]
    assert pd.isna(out["text"].iloc[7])
    assert out["number"].tolist() == frame["number"].tolist()
    assert frame["text"].iloc[0] == "=1+1"  # the input is not modified
    name = schema.neutralise_formulas(accounts)["name"].iloc[0]
    assert name == '\'=HYPERLINK("http://evil.example","Click me")'


def test_escape_html():
    assert schema.escape_html('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
    assert schema.escape_html(None) == ""


def test_contract_page_lists_every_rule_name():
    page = CONTRACT_PAGE.read_text(encoding="utf-8")
    pair_rules = [c.name for t in schema.TABLES for c in schema.MODELS[t].to_schema().checks]
    for rule in [*schema._RULE_ORDER, *pair_rules, "exists_in_"]:
        assert f"`{rule}" in page, rule


def test_table_summary_for_the_report_appendix(bad_corpus):
    summary = validate_folder(bad_corpus / "three_problems", now=NOW).table_summary()
    assert list(summary.columns) == [
        "table",
        "file",
        "rows",
        "columns",
        "errors",
        "warnings",
        "status",
    ]
    assert summary["table"].tolist() == list(schema.TABLES)
    accounts = summary.set_index("table").loc["accounts"]
    assert (accounts["file"], accounts["rows"], accounts["status"]) == (
        "accounts.csv",
        3,
        "1 errors",
    )
    assert summary.set_index("table").loc["users", "status"] == "ok"
    unreadable = validate_folder(bad_corpus / "non_utf8", now=NOW).table_summary()
    assert unreadable.set_index("table").loc["people", "status"] == "unreadable"
    missing = validate_folder(bad_corpus / "missing_table", now=NOW).table_summary()
    assert missing.set_index("table").loc["opportunities", "status"] == "missing"


def test_validates_a_duckdb_database(bad_corpus, tmp_path):
    import duckdb

    from alignment import store

    db = store.load_into_duckdb(bad_corpus / "quirks", tmp_path / "crm.duckdb")
    report = validate_folder(db, now=NOW)
    assert report.ok
    assert {w.rule for w in report.warnings} == {r for _, _, r, _ in EXPECTED_WARNINGS["quirks"]}
    assert report.tables["touchpoints"].file == "crm.duckdb/touchpoints"
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO people SELECT * FROM people WHERE person_id = 'P002'")
    con.execute("DROP TABLE opportunities")
    con.close()
    report = validate_folder(db, now=NOW)
    assert error_keys(report) == {
        ("crm.duckdb/people", "person_id", (2, 5), "unique"),
        ("crm.duckdb/opportunities", None, (), "required_table"),
    }
