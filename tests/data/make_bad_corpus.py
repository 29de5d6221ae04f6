"""Write the bad-input corpus: tests/data/bad/<case>/, one small CSV dataset per case.

Every case starts from the same valid dataset (``good/``, all eleven contract tables, a few
rows each) and breaks it in exactly one way, so each test can state the one error (file,
column, rows, rule) or warning it expects. Row numbers below are data rows: row 1 is the
first row after the header.

Run from the project root to regenerate (the output is committed beside this script)::

    .venv/bin/python tests/data/make_bad_corpus.py
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

BAD = Path(__file__).resolve().parent / "bad"

Tables = dict[str, list[list[str]]]  # table -> header row + data rows, all text


def _hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def good_tables() -> Tables:
    """The valid dataset: every table, timestamps in 2024-2025, all references resolve."""
    # fmt: off
    return {
        "accounts": [
            ["account_id", "name", "industry", "segment", "region", "created_at"],
            ["A001", "Acme Corp", "Manufacturing", "ENT", "EMEA", "2024-01-15T09:00:00Z"],
            ["A002", "Bolt Ltd", "Software", "MM", "NA", "2024-03-02 10:30:00+00:00"],
            ["A003", "Cobalt GmbH", "", "SMB", "EMEA", "2024-06-20"],
        ],
        "people": [
            ["person_id", "account_id", "persona", "created_at", "email_hash"],
            ["P001", "A001", "Economic Buyer", "2025-01-10T08:00:00Z", _hash("ann@acme.example")],
            ["P002", "A001", "Champion", "2025-01-12T08:00:00Z", ""],
            ["P003", "A002", "User", "2025-02-01T12:00:00Z", _hash("cy@bolt.example")],
            ["P004", "A003", "", "2025-02-15T09:30:00Z", _hash("di@cobalt.example")],
        ],
        "users": [
            ["user_id", "team", "region", "capacity_leads_per_week"],
            ["U01", "marketing", "EMEA", ""],
            ["U02", "sdr", "EMEA", "40"],
            ["U03", "sales", "NA", "25.5"],
        ],
        "campaigns": [
            ["campaign_id", "channel", "name", "start_date", "end_date", "cost"],
            ["C01", "paid_search", "Q1 Search", "2025-01-01", "2025-03-31", "12000"],
            ["C02", "webinar", 'Webinar: "Pipeline, faster"', "2025-02-01", "2025-02-28",
             "3500.50"],
        ],
        "touchpoints": [
            ["touch_id", "person_id", "account_id", "ts", "channel", "campaign_id",
             "touch_type", "is_sales_touch", "user_id", "asset_id"],
            ["T001", "P001", "A001", "2025-01-11T10:00:00Z", "paid_search", "C01",
             "ad_click", "false", "", ""],
            ["T002", "P001", "A001", "2025-01-20T15:00:00Z", "webinar", "C02",
             "webinar_attend", "false", "", ""],
            ["T003", "P002", "A001", "2025-01-25T09:00:00Z", "sales", "", "call", "true",
             "U02", ""],
            ["T004", "P003", "A002", "2025-02-03T11:00:00Z", "paid_search", "C01",
             "ad_click", "no", "", ""],
            ["T005", "P003", "", "2025-02-10T16:00:00Z", "sales", "", "meeting", "YES",
             "U03", "AS01"],
            ["T006", "P004", "A003", "2025-02-20T08:00:00Z", "email", "", "email_open", "0",
             "", ""],
        ],
        "stage_events": [
            ["person_id", "stage", "entered_at", "owner_user_id", "reason"],
            ["P001", "Lead", "2025-01-10T08:00:00Z", "", ""],
            ["P001", "MQL", "2025-01-21T09:00:00Z", "U01", ""],
            ["P001", "SAL", "2025-01-22T09:00:00Z", "U02", ""],
            ["P002", "Lead", "2025-01-12T08:00:00Z", "", ""],
            ["P003", "Lead", "2025-02-01T12:00:00Z", "", ""],
            ["P003", "MQL", "2025-02-04T12:00:00Z", "U01", ""],
            ["P003", "Disqualified", "2025-02-12T12:00:00Z", "U02", "no budget"],
        ],
        "opportunities": [
            ["opp_id", "account_id", "created_at", "closed_at", "stage", "is_won", "amount",
             "owner_user_id"],
            ["O001", "A001", "2025-02-01T10:00:00Z", "2025-04-15T10:00:00Z", "Closed Won",
             "true", "48000", "U03"],
            ["O002", "A002", "2025-03-01T10:00:00Z", "", "Proposal", "", "", "U03"],
        ],
        "opportunity_people": [
            ["opp_id", "person_id", "role"],
            ["O001", "P001", "Decision Maker"],
            ["O001", "P002", "Champion"],
        ],
        "assets": [
            ["asset_id", "title", "type", "funnel_stage", "persona", "owner_team",
             "created_at", "updated_at", "expires_at"],
            ["AS01", "ROI calculator", "one_pager", "decision", "Economic Buyer",
             "product_marketing", "2024-11-01T00:00:00Z", "2025-01-05T00:00:00Z",
             "2026-12-31T00:00:00Z"],
            ["AS02", "Security whitepaper", "whitepaper", "consideration", "", "marketing",
             "2024-09-01T00:00:00Z", "", ""],
        ],
        "asset_events": [
            ["event_id", "asset_id", "ts", "event_type", "user_id", "person_id", "account_id",
             "opp_id", "share_id", "device", "duration_s", "pages_viewed", "pages_total"],
            ["E001", "AS01", "2025-02-10T16:05:00Z", "share", "U03", "", "A002", "", "S001",
             "", "", "", ""],
            ["E002", "AS01", "2025-02-11T09:00:00Z", "external_view", "", "P003", "A002", "",
             "S001", "desktop", "185.5", "3", "4"],
            ["E003", "AS02", "2025-02-12T09:00:00Z", "internal_view", "U02", "", "", "", "",
             "mobile", "20", "1", "12"],
        ],
        "assignments": [
            ["experiment_id", "unit_type", "unit_id", "arm", "assigned_at"],
            ["X01", "person", "P001", "treatment", "2025-01-05T00:00:00Z"],
            ["X01", "person", "P002", "control", "2025-01-05T00:00:00Z"],
        ],
    }
    # fmt: on


def csv_text(rows: list[list[str]]) -> str:
    """Rows as CSV text: comma, minimal double quoting, ``\\n`` line ends."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def write_folder(folder: Path, tables: Tables, raw: dict[str, bytes] | None = None) -> Path:
    """Write ``tables`` as ``<table>.csv`` (UTF-8) into a fresh ``folder``; ``raw`` files
    (name -> bytes) are written as they are, replacing a table of the same name."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    raw = raw or {}
    for table, rows in tables.items():
        if f"{table}.csv" not in raw:
            (folder / f"{table}.csv").write_text(csv_text(rows), encoding="utf-8")
    for name, data in raw.items():
        (folder / name).write_bytes(data)
    return folder


def _column(rows: list[list[str]], name: str) -> int:
    return rows[0].index(name)


def _set(t: Tables, table: str, row: int, column: str, value: str) -> None:
    """Set data row ``row`` (1-based, after the header) of ``column``."""
    t[table][row][_column(t[table], column)] = value


# -- one function per case: take the good tables, break them in one way --------------------


def missing_column(t: Tables) -> None:
    """accounts.csv has no segment column (required) -> required_column."""
    i = _column(t["accounts"], "segment")
    t["accounts"] = [r[:i] + r[i + 1 :] for r in t["accounts"]]


def wrong_type(t: Tables) -> None:
    """touchpoints.csv row 3: ts '25/01/2025 09:00' is not ISO 8601 -> is_timestamp."""
    _set(t, "touchpoints", 3, "ts", "25/01/2025 09:00")


def duplicate_ids(t: Tables) -> None:
    """people.csv row 5 repeats person_id P003 of row 3 -> unique, rows 3 and 5."""
    t["people"].append(["P003", "A003", "User", "2025-01-01T00:00:00Z", ""])


def dangling_foreign_key(t: Tables) -> None:
    """touchpoints.csv row 5: person P999 is not in people -> exists_in_people."""
    _set(t, "touchpoints", 5, "person_id", "P999")


def dangling_asset_event_refs(t: Tables) -> None:
    """asset_events.csv: row 1's account A999, row 2's person P999 and row 3's opportunity
    O999 do not exist -> exists_in_accounts, exists_in_people, exists_in_opportunities."""
    _set(t, "asset_events", 1, "account_id", "A999")
    _set(t, "asset_events", 2, "person_id", "P999")
    _set(t, "asset_events", 3, "opp_id", "O999")


def dangling_assignment_units(t: Tables) -> None:
    """assignments.csv: a unit_id must exist in the table its unit_type names. Rows 3, 5, 7
    and 8 are valid (account A001, user U02, regions EMEA and NA); row 4's account A999 ->
    exists_in_accounts, row 6's user U99 -> exists_in_users, row 9's region APAC (no
    account or user has it) -> exists_in_accounts_or_users, row 10's person A001 (an
    account, not a person) -> exists_in_people."""
    t["assignments"] += [
        ["X02", "account", "A001", "treatment", "2025-01-05T00:00:00Z"],
        ["X02", "account", "A999", "control", "2025-01-05T00:00:00Z"],
        ["X03", "user", "U02", "treatment", "2025-01-05T00:00:00Z"],
        ["X03", "user", "U99", "control", "2025-01-05T00:00:00Z"],
        ["X04", "region", "EMEA", "treatment", "2025-01-05T00:00:00Z"],
        ["X04", "region", "NA", "control", "2025-01-05T00:00:00Z"],
        ["X04", "region", "APAC", "control", "2025-01-05T00:00:00Z"],
        ["X01", "person", "A001", "control", "2025-01-05T00:00:00Z"],
    ]


def future_timestamp(t: Tables) -> None:
    """stage_events.csv row 3: entered in 2099 -> not_in_future."""
    _set(t, "stage_events", 3, "entered_at", "2099-01-01T00:00:00Z")


def before_created_at(t: Tables) -> None:
    """opportunities.csv row 1 closes before it was created -> closed_at_not_before_created_at
    (error); touchpoints.csv row 1 is 5 days before P001 was created -> warning."""
    _set(t, "opportunities", 1, "closed_at", "2025-01-15T10:00:00Z")
    _set(t, "touchpoints", 1, "ts", "2025-01-05T10:00:00Z")


def null_required(t: Tables) -> None:
    """stage_events.csv row 4: stage is empty -> not_null."""
    _set(t, "stage_events", 4, "stage", "")


def formula_text(t: Tables) -> None:
    """Spreadsheet formulas as names and titles: valid data (neutralised only on export),
    one formula_like_text warning per column: accounts name row 1, people persona row 2,
    campaigns name row 1, assets title row 2."""
    _set(t, "accounts", 1, "name", '=HYPERLINK("http://evil.example","Click me")')
    _set(t, "campaigns", 1, "name", "+cmd|' /C calc'!A0")
    _set(t, "assets", 2, "title", "@SUM(1+1)")
    _set(t, "people", 2, "persona", "-2+3")


def unhashed_email(t: Tables) -> None:
    """people.csv row 2: a raw address in email_hash -> email_is_hashed (value masked)."""
    _set(t, "people", 2, "email_hash", "bob.smith@acme.example")


def raw_email(t: Tables) -> None:
    """people.csv has a raw email column instead of email_hash: hashed on ingest, a warning."""
    addresses = ["Ann@Acme.example ", "", "cy@bolt.example", "di@cobalt.example"]
    rows = t["people"]
    rows[0][_column(rows, "email_hash")] = "email"
    for row, address in zip(rows[1:], addresses, strict=True):
        row[-1] = address


def quirks(t: Tables) -> None:
    """Warnings only: P001 enters SAL before MQL (out of order), P002's Lead twice (exact
    duplicate), P003 enters Lead and MQL at the same instant (tie), touch T003 is a sales
    touch with no user."""
    _set(t, "stage_events", 3, "entered_at", "2025-01-20T09:00:00Z")
    t["stage_events"].append(list(t["stage_events"][4]))
    _set(t, "stage_events", 6, "entered_at", "2025-02-01T12:00:00Z")
    _set(t, "touchpoints", 3, "user_id", "")


def three_problems(t: Tables) -> None:
    """Three separate errors: accounts row 2 segment 'XL' (allowed_values), opportunities
    row 2 amount -5 (non_negative), touchpoints row 6 repeats touch_id T005 (unique)."""
    _set(t, "accounts", 2, "segment", "XL")
    _set(t, "opportunities", 2, "amount", "-5")
    _set(t, "touchpoints", 6, "touch_id", "T005")


CASES: dict[str, Callable[[Tables], None]] = {
    f.__name__: f
    for f in (
        missing_column,
        wrong_type,
        duplicate_ids,
        dangling_foreign_key,
        dangling_asset_event_refs,
        dangling_assignment_units,
        future_timestamp,
        before_created_at,
        null_required,
        formula_text,
        unhashed_email,
        raw_email,
        quirks,
        three_problems,
    )
}


def write_corpus(root: Path = BAD) -> list[Path]:
    """Write every case folder under ``root``; return the folders written."""
    written = [write_folder(root / "good", good_tables())]
    for name, breaks in CASES.items():
        tables = copy.deepcopy(good_tables())
        breaks(tables)
        written.append(write_folder(root / name, tables))
    # Cases about whole files, not values:
    tables = good_tables()
    written.append(write_folder(root / "empty_file", tables, {"stage_events.csv": b""}))
    header_only = csv_text(tables["opportunities"][:1]).encode()
    written.append(write_folder(root / "header_only", tables, {"opportunities.csv": header_only}))
    missing = {k: v for k, v in tables.items() if k != "opportunities"}
    written.append(write_folder(root / "missing_table", missing))
    # An optional table present but empty is fine: its references are not checked.
    written.append(write_folder(root / "empty_optional", tables, {"users.csv": b""}))
    # people.csv row 3 has a Latin-1 "é" (byte 0xe9): the file is not UTF-8.
    people = copy.deepcopy(tables["people"])
    people[3][_column(people, "persona")] = "Décideur"
    latin1 = csv_text(people).encode("latin-1")
    written.append(write_folder(root / "non_utf8", tables, {"people.csv": latin1}))
    return written


if __name__ == "__main__":
    for folder in write_corpus():
        print(folder.relative_to(BAD.parent.parent.parent))
