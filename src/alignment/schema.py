"""The data contract (``docs/data_contract.md``) as code: pandera models, reading, validation.

One pandera ``DataFrameModel`` per contract table states its columns, types, nullability and
named rules; :func:`validate_folder` checks a whole export folder against them and returns a
:class:`ValidationReport` listing **every** problem at once, each as a :class:`DataError` that
names the file, column, rows (1-based, as in the file) and rule.

How a folder is checked
-----------------------
1. Each table file (``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet``) is read and
   its contract columns parsed into the contract types (ids as text, timestamps UTC, flags as
   booleans). Unparseable cells are ``is_timestamp``/``is_date``/``is_number``/``is_boolean``
   errors naming their rows; a raw ``email`` column is hashed into ``email_hash`` and dropped.
2. Per-table rules run through pandera (lazy validation) for tables of up to
   ``big_rows`` rows (default :data:`BIG_TABLE_ROWS`, 2 million). Bigger tables skip pandas
   entirely: the *same* rules, derived from the same models, run as SQL in DuckDB over the
   file (Parquet is scanned in place; CSV is loaded once into a DuckDB temporary table). The
   two engines give the same errors; the test suite checks this on the bad-input corpus.
3. Cross-table rules (every ``references`` of the contract) and the warnings (quirks that
   break no rule) always run as SQL in DuckDB: anti-joins and window functions, fast at any
   size.

Row numbers
-----------
Row 1 is the first data row after a CSV's header (blank lines are not rows; a quoted value
may span lines and still counts as one row); in Parquet, row 1 is the file's first row.

Examples
--------
>>> escape_html('<b>"Q3" & more</b>')
'&lt;b&gt;&quot;Q3&quot; &amp; more&lt;/b&gt;'
>>> mask_email("contact: jane.doe@example.com")
'contact: j***@***.com'
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import hashlib
import html
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pandera.engines import pandas_engine
from pandera.errors import SchemaErrors
from pandera.typing import Series

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Constants of the contract
# --------------------------------------------------------------------------------------------

REQUIRED_TABLES: tuple[str, ...] = (
    "accounts",
    "people",
    "touchpoints",
    "stage_events",
    "opportunities",
)
OPTIONAL_TABLES: tuple[str, ...] = (
    "users",
    "campaigns",
    "opportunity_people",
    "assets",
    "asset_events",
    "assignments",
)
#: Every contract table, in the order of docs/data_contract.md (errors are listed this way).
TABLES: tuple[str, ...] = (
    "accounts",
    "people",
    "users",
    "campaigns",
    "touchpoints",
    "stage_events",
    "opportunities",
    "opportunity_people",
    "assets",
    "asset_events",
    "assignments",
)
SEGMENTS: tuple[str, ...] = ("SMB", "MM", "ENT")
TEAMS: tuple[str, ...] = ("marketing", "sdr", "sales")
#: The funnel in order; a later stage entered before an earlier one is a warning.
FUNNEL_STAGES: tuple[str, ...] = ("Lead", "MQL", "SAL", "SQL", "Opportunity", "Customer")
STAGES: tuple[str, ...] = FUNNEL_STAGES + ("Disqualified", "Recycled")
ASSET_EVENT_TYPES: tuple[str, ...] = (
    "internal_view",
    "share",
    "external_view",
    "download",
    "print",
    "forward",
    "present",
)
UNIT_TYPES: tuple[str, ...] = ("person", "account", "user", "region")
#: Where an ``assignments.unit_id`` must exist, by its ``unit_type``: ``"table.column"``
#: targets; a unit of type region must be the region of some account or some user.
UNIT_REFERENCES: dict[str, tuple[str, ...]] = {
    "person": ("people.person_id",),
    "account": ("accounts.account_id",),
    "user": ("users.user_id",),
    "region": ("accounts.region", "users.region"),
}
#: File name endings of a DuckDB database that validate_folder accepts instead of a folder.
DATABASE_SUFFIXES: tuple[str, ...] = (".duckdb", ".ddb", ".db")
#: File name endings of a table file, tried in this order.
FILE_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")
#: Tables with more rows than this are validated with SQL in DuckDB instead of pandera.
BIG_TABLE_ROWS = 2_000_000
#: A timestamp up to this far after "now" is not yet "in the future" (clock skew, time zones).
FUTURE_SLACK = timedelta(hours=1)
#: A touch this long before its person's created_at is still normal (CRMs create late).
TOUCH_BEFORE_CREATED_SLACK = timedelta(days=1)
#: At most this many offending row numbers are kept per error (the message gives the total).
MAX_ROWS_LISTED = 10_000
#: Offending values and warning examples shown per problem.
MAX_EXAMPLES = 5

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_HEX64 = r"[0-9a-fA-F]{64}"
_WHITESPACE = " \t\n\r\x0b\x0c"

# --------------------------------------------------------------------------------------------
# Errors, warnings and the report
# --------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"([^\s@'\"<>(),;:\[\]]+)@([^\s@'\"<>(),;:\[\]]+)")


def mask_email(text: str) -> str:
    """Replace every e-mail address in ``text`` by a mask such as ``j***@***.com``.

    Only the first character of the local part and the last label of the domain are kept,
    so a message can hint at the value without disclosing the address.

    Examples
    --------
    >>> mask_email("a.b@corp.example.org and x@y")
    'a***@***.org and x***@***'
    """

    def _mask(match: re.Match[str]) -> str:
        local, domain = match.group(1), match.group(2)
        tld = domain.rsplit(".", 1)[1] if "." in domain else ""
        return f"{local[0]}***@***" + (f".{tld}" if tld else "")

    return _EMAIL.sub(_mask, text)


def hash_email(address: str | None) -> str | None:
    """SHA-256 (hex, 64 characters) of the trimmed, lower-cased e-mail ``address``.

    ``None`` or an address that is blank after trimming gives ``None``. This is how the
    contract's ``email_hash`` is made from a raw ``email`` column.

    Examples
    --------
    >>> hash_email("  Jane@Example.com ") == hash_email("jane@example.com")
    True
    >>> len(hash_email("jane@example.com"))
    64
    """
    if address is None or (isinstance(address, float) and np.isnan(address)):
        return None
    text = str(address).strip(_WHITESPACE).lower()
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else None


def _show(value: Any) -> str | None:
    """A short, masked, quoted rendering of one offending value (``None`` for a null)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, (datetime, pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    text = mask_email(str(value))
    if len(text) > 40:
        text = text[:39] + "…"
    return repr(text)


def _shown(values: Iterable[Any], limit: int = MAX_EXAMPLES) -> tuple[str, ...]:
    """The first ``limit`` distinct non-null values, rendered by :func:`_show`, in order."""
    out: list[str] = []
    for value in values:
        text = _show(value)
        if text is not None and text not in out:
            out.append(text)
            if len(out) == limit:
                break
    return tuple(out)


class DataError(ValueError):
    """A broken rule of the data contract: which file, column, rows and rule.

    Parameters
    ----------
    file : str
        File name as the user wrote it (``people.csv``); the table name when the file is
        missing altogether.
    column : str or None
        Column concerned, or ``None`` for a problem with the whole file.
    rows : sequence of int
        Offending rows, 1-based as in the file: row 1 is the first data row after the CSV
        header (the first row of a Parquet file). Empty when the problem has no rows (a
        missing column). At most :data:`MAX_ROWS_LISTED` are kept; see ``n_rows``.
    rule : str
        Name of the broken rule, as listed in ``docs/data_contract.md`` (``unique``,
        ``not_null``, ``exists_in_people``, ``is_timestamp``...).
    values : sequence of str, optional
        A few offending values, already rendered; e-mail addresses are masked.
    detail : str, optional
        One short explanation (``one of SMB, MM, ENT``; ``byte 0xe9 at offset 41``).
    n_rows : int, optional
        Total number of offending rows when ``rows`` lists only the first ones.

    Notes
    -----
    Every field is passed to ``ValueError.__init__``, so the error pickles and survives the
    trip out of a notebook kernel. ``values`` and ``detail`` are masked on construction: no
    message ever shows a raw e-mail address.
    """

    def __init__(
        self,
        file: str,
        column: str | None,
        rows: Sequence[int],
        rule: str,
        values: Sequence[str] = (),
        detail: str = "",
        n_rows: int | None = None,
    ) -> None:
        rows = tuple(int(r) for r in rows)
        values = tuple(mask_email(str(v)) for v in values)
        detail = mask_email(detail)
        super().__init__(file, column, rows, rule, values, detail, n_rows)
        self.file, self.column, self.rows, self.rule = file, column, rows, rule
        self.values, self.detail, self.n_rows = values, detail, n_rows

    @property
    def key(self) -> tuple[str, str | None, tuple[int, ...], str]:
        """``(file, column, rows, rule)``: what a test or a caller compares."""
        return (self.file, self.column, self.rows, self.rule)

    def __str__(self) -> str:  # people.csv, column email_hash, rows 3, 17: breaks email_is_hashed
        parts = [self.file]
        if self.column is not None:
            parts.append(f"column {self.column}")
        if self.rows:
            total = self.n_rows if self.n_rows is not None else len(self.rows)
            shown = ", ".join(map(str, self.rows[:5]))
            more = f" … ({total} rows)" if total > 5 else ""
            parts.append(f"rows {shown}{more}")
        text = ", ".join(parts) + f": breaks {self.rule}"
        if self.detail:
            text += f" ({self.detail})"
        if self.values:
            text += "; values " + ", ".join(self.values)
        return text

    def __repr__(self) -> str:
        return f"DataError({str(self)!r})"


@dataclass(frozen=True)
class DataWarning:
    """A quirk of the data that breaks no rule, counted, with up to five examples.

    Attributes
    ----------
    file : str
        File name (``stage_events.csv``).
    column : str or None
        Column concerned.
    rule : str
        Name of the quirk: ``stage_out_of_order``, ``duplicate_stage_event``,
        ``tied_stage_timestamp``, ``sales_touch_without_user``,
        ``touch_before_person_created``, ``raw_email_hashed`` or ``formula_like_text``.
    count : int
        How many ``unit`` show the quirk.
    examples : tuple of str
        Up to :data:`MAX_EXAMPLES` examples (ids and rows, never an e-mail address).
    unit : str
        What ``count`` counts: ``rows``, ``persons`` or ``groups``.
    """

    file: str
    column: str | None
    rule: str
    count: int
    examples: tuple[str, ...] = ()
    unit: str = "rows"

    def __post_init__(self) -> None:
        masked = tuple(mask_email(str(e)) for e in self.examples[:MAX_EXAMPLES])
        object.__setattr__(self, "examples", masked)

    def __str__(self) -> str:  # stage_events.csv, column entered_at: 2 persons with stage_out...
        where = self.file + (f", column {self.column}" if self.column else "")
        unit = self.unit[:-1] if self.count == 1 and self.unit.endswith("s") else self.unit
        text = f"{where}: {self.count} {unit} with {self.rule}"
        if self.examples:
            text += "; e.g. " + "; ".join(self.examples)
        return text


@dataclass(frozen=True)
class TableSummary:
    """One table file as read: its name, rows, columns and the engine that checked it.

    ``engine`` is ``"pandera"`` (read into pandas) or ``"duckdb"`` (big table, SQL checks);
    ``columns`` are the columns after ingest (a raw ``email`` replaced by ``email_hash``).
    """

    file: str
    rows: int
    columns: tuple[str, ...]
    engine: str = "pandera"


@dataclass(frozen=True)
class ValidationReport:
    """Every problem of one data folder: errors (broken rules) and warnings (quirks).

    Attributes
    ----------
    errors : tuple of DataError
        Broken rules, ordered by table (contract order), column and rule.
    warnings : tuple of DataWarning
        Quirks that break no rule.
    tables : dict of str to TableSummary
        Each table file present, by table name.
    missing_optional : tuple of str
        Optional tables absent from the folder (fine: the studies that need them say so).
    """

    errors: tuple[DataError, ...]
    warnings: tuple[DataWarning, ...]
    tables: dict[str, TableSummary]
    missing_optional: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no rule is broken (warnings allowed)."""
        return not self.errors

    def error_lines(self) -> list[str]:
        """One line per error, as ``alignment validate`` prints them."""
        return [str(e) for e in self.errors]

    def table_lines(self) -> list[str]:
        """One line per table present (rows, columns), then one per absent optional table."""
        lines = [
            f"{s.file}: {s.rows} rows, {len(s.columns)} columns" for s in self.tables.values()
        ]
        lines += [f"{name}: absent (optional)" for name in self.missing_optional]
        return lines

    def summary_lines(self) -> list[str]:
        """Same as :meth:`table_lines`: what ``alignment validate`` prints when clean."""
        return self.table_lines()

    def table_summary(self) -> pd.DataFrame:
        """One row per contract table: file, rows, columns and how it fared.

        Columns: ``table``, ``file`` (empty when absent), ``rows``, ``columns`` (count),
        ``errors`` and ``warnings`` (counts), ``status`` (``ok``, ``absent (optional)``,
        ``missing``, ``unreadable`` or ``N errors``). For the report's appendix.
        """
        records = []
        for table in TABLES:
            summary = self.tables.get(table)
            errors = [e for e in self.errors if _table_of_name(e.file) == table]
            warnings = [w for w in self.warnings if _table_of_name(w.file) == table]
            if summary is not None:
                status = f"{len(errors)} errors" if errors else "ok"
                file, rows, n_columns = summary.file, summary.rows, len(summary.columns)
            else:
                file = next((e.file for e in errors if e.file != table), "")
                rows, n_columns = 0, 0
                if table in self.missing_optional:
                    status = "absent (optional)"
                else:
                    status = "unreadable" if file else "missing"
            records.append(
                {
                    "table": table,
                    "file": file,
                    "rows": rows,
                    "columns": n_columns,
                    "errors": len(errors),
                    "warnings": len(warnings),
                    "status": status,
                }
            )
        return pd.DataFrame.from_records(records)

    def warning_lines(self) -> list[str]:
        """One line per warning: what, how many, up to five examples."""
        return [f"warning: {w}" for w in self.warnings]

    def lines(self) -> list[str]:
        """What ``alignment validate`` shows: errors (or tables when clean), then warnings."""
        head = self.error_lines() if self.errors else self.table_lines()
        return head + self.warning_lines()

    def raise_for_errors(self) -> None:
        """Raise the first error, if any (what a study does with a broken folder)."""
        if self.errors:
            raise self.errors[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for the report manifest and appendix."""
        return {
            "ok": self.ok,
            "errors": [str(e) for e in self.errors],
            "warnings": [
                {
                    "file": w.file,
                    "column": w.column,
                    "rule": w.rule,
                    "count": w.count,
                    "unit": w.unit,
                    "examples": list(w.examples),
                }
                for w in self.warnings
            ],
            "tables": {
                name: {
                    "file": s.file,
                    "rows": s.rows,
                    "columns": list(s.columns),
                    "engine": s.engine,
                }
                for name, s in self.tables.items()
            },
            "missing_optional": list(self.missing_optional),
        }


# --------------------------------------------------------------------------------------------
# Safe output of text that came from data
# --------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` safe to export as CSV: text cells cannot start a spreadsheet formula.

    Every string cell (and string column or index label) starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return gets a leading ``'``, so a spreadsheet shows it as text
    instead of evaluating it (OWASP, "CSV injection"). Numeric, boolean and timestamp columns
    are left alone, negative numbers included.

    Parameters
    ----------
    frame : pandas.DataFrame
        Table about to be written as CSV; not modified.

    Returns
    -------
    pandas.DataFrame
        Same shape, dtypes kept for non-text columns.

    Examples
    --------
    >>> out = neutralise_formulas(pd.DataFrame({"title": ["=HYPERLINK(1)", "ok"], "n": [-1, 2]}))
    >>> out["title"].tolist(), out["n"].tolist()
    (["'=HYPERLINK(1)", 'ok'], [-1, 2])
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_string_dtype(values) or values.dtype == object:
            out[column] = values.map(_neutralise, na_action="ignore")
    out.columns = [_neutralise(c) for c in out.columns]
    if pd.api.types.is_string_dtype(out.index) or out.index.dtype == object:
        out.index = out.index.map(_neutralise)
    return out


def escape_html(text: Any) -> str:
    """``text`` escaped for HTML (``& < > " '``); ``None`` and missing values give ``""``.

    Use for every string that came from data (asset titles, campaign names) before it goes
    into HTML.

    Examples
    --------
    >>> escape_html("<script>alert('x')</script>")
    '&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;'
    """
    if text is None or (isinstance(text, float) and np.isnan(text)) or text is pd.NA:
        return ""
    return html.escape(str(text), quote=True)


# --------------------------------------------------------------------------------------------
# The contract: one DataFrameModel per table
# --------------------------------------------------------------------------------------------
# Field metadata carries the two rules that pandera cannot state on its own:
#   {"not_in_future": True}   the timestamp may not lie after now + FUTURE_SLACK
#   {"references": "t.c"}     every non-null value exists in table t, column c (checked in SQL)
#   {"references_by": {"k": {v: ("t.c", ...)}}}
#                             where column k of the row is v, every non-null value exists in
#                             one of the t.c listed (checked in SQL)

_UTC = {"unit": "us", "tz": "UTC"}  # timestamps: microseconds (as DuckDB), UTC
_DAY = {"unit": "s"}  # dates: midnight, no zone
_PAST = {"not_in_future": True}


def _refs(target: str) -> dict[str, str]:
    return {"references": target}


def _not_before(frame: pd.DataFrame, later: str, earlier: str) -> pd.Series:
    """True where ``later`` is null, ``earlier`` is null or ``later >= earlier``."""
    if later not in frame.columns or earlier not in frame.columns:
        return pd.Series(True, index=frame.index)
    ok = frame[later].isna() | frame[earlier].isna() | (frame[later] >= frame[earlier])
    return ok.astype(bool)


class _Contract(pa.DataFrameModel):
    class Config:
        coerce = True
        strict = False  # extra columns are kept and ignored


class Accounts(_Contract):
    """Table ``accounts``: one row per buying company."""

    account_id: Series[str] = pa.Field(unique=True)
    name: Series[str] | None = pa.Field(nullable=True)  # free text, escaped on display
    industry: Series[str] | None = pa.Field(nullable=True)
    segment: Series[str] = pa.Field(isin=SEGMENTS)
    region: Series[str]
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, metadata=_PAST)


class People(_Contract):
    """Table ``people``: one row per person of an account; e-mails only as hashes."""

    person_id: Series[str] = pa.Field(unique=True)
    account_id: Series[str] = pa.Field(metadata=_refs("accounts.account_id"))
    persona: Series[str] | None = pa.Field(nullable=True)
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, metadata=_PAST)
    email_hash: Series[str] | None = pa.Field(nullable=True)  # may be absent

    @pa.check("email_hash", name="email_is_hashed")
    def email_is_hashed(cls, email_hash: Series[str]) -> Series[bool]:
        """64 hex characters: a SHA-256 of the address, never the address itself."""
        return email_hash.str.fullmatch(_HEX64).fillna(True).astype(bool)


class Users(_Contract):
    """Table ``users``: marketing, SDR and sales staff."""

    user_id: Series[str] = pa.Field(unique=True)
    team: Series[str] = pa.Field(isin=TEAMS)
    region: Series[str] | None = pa.Field(nullable=True)
    capacity_leads_per_week: Series[float] | None = pa.Field(nullable=True, ge=0)


class Campaigns(_Contract):
    """Table ``campaigns``: marketing campaigns with channel and cost (report currency)."""

    campaign_id: Series[str] = pa.Field(unique=True)
    channel: Series[str]
    name: Series[str] | None = pa.Field(nullable=True)
    start_date: Series[pandas_engine.DateTime] | None = pa.Field(nullable=True, dtype_kwargs=_DAY)
    end_date: Series[pandas_engine.DateTime] | None = pa.Field(nullable=True, dtype_kwargs=_DAY)
    cost: Series[float] | None = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check(name="end_date_not_before_start_date")
    def end_date_not_before_start_date(cls, frame: pd.DataFrame) -> Series[bool]:
        return _not_before(frame, "end_date", "start_date")


class Touchpoints(_Contract):
    """Table ``touchpoints``: every marketing or sales touch of a person."""

    touch_id: Series[str] = pa.Field(unique=True)
    person_id: Series[str] = pa.Field(metadata=_refs("people.person_id"))
    account_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("accounts.account_id"))
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, metadata=_PAST)
    channel: Series[str]
    campaign_id: Series[str] | None = pa.Field(
        nullable=True, metadata=_refs("campaigns.campaign_id")
    )
    touch_type: Series[str] | None = pa.Field(nullable=True)
    is_sales_touch: Series[pd.BooleanDtype] | None  # absent: all touches marketing's
    user_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("users.user_id"))
    asset_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("assets.asset_id"))


class StageEvents(_Contract):
    """Table ``stage_events``: a person entering a funnel stage."""

    person_id: Series[str] = pa.Field(metadata=_refs("people.person_id"))
    stage: Series[str] = pa.Field(isin=STAGES)
    entered_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, metadata=_PAST)
    owner_user_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("users.user_id"))
    reason: Series[str] | None = pa.Field(nullable=True)


class Opportunities(_Contract):
    """Table ``opportunities``: deals, open or closed; amounts in the report currency."""

    opp_id: Series[str] = pa.Field(unique=True)
    account_id: Series[str] = pa.Field(metadata=_refs("accounts.account_id"))
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, metadata=_PAST)
    closed_at: Series[pd.DatetimeTZDtype] | None = pa.Field(nullable=True, dtype_kwargs=_UTC)
    stage: Series[str]
    is_won: Series[pd.BooleanDtype] = pa.Field(nullable=True)  # null while open
    amount: Series[float] = pa.Field(nullable=True, ge=0)
    owner_user_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("users.user_id"))

    @pa.dataframe_check(name="closed_at_not_before_created_at")
    def closed_at_not_before_created_at(cls, frame: pd.DataFrame) -> Series[bool]:
        return _not_before(frame, "closed_at", "created_at")


class OpportunityPeople(_Contract):
    """Table ``opportunity_people``: the people of an opportunity's buying group."""

    opp_id: Series[str] = pa.Field(metadata=_refs("opportunities.opp_id"))
    person_id: Series[str] = pa.Field(metadata=_refs("people.person_id"))
    role: Series[str] | None = pa.Field(nullable=True)


class Assets(_Contract):
    """Table ``assets``: content assets (titles escaped in HTML, neutralised in CSV)."""

    asset_id: Series[str] = pa.Field(unique=True)
    title: Series[str]
    type: Series[str]
    funnel_stage: Series[str] | None = pa.Field(nullable=True)
    persona: Series[str] | None = pa.Field(nullable=True)
    owner_team: Series[str] | None = pa.Field(nullable=True)
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC)
    updated_at: Series[pd.DatetimeTZDtype] | None = pa.Field(nullable=True, dtype_kwargs=_UTC)
    expires_at: Series[pd.DatetimeTZDtype] | None = pa.Field(nullable=True, dtype_kwargs=_UTC)

    @pa.dataframe_check(name="updated_at_not_before_created_at")
    def updated_at_not_before_created_at(cls, frame: pd.DataFrame) -> Series[bool]:
        return _not_before(frame, "updated_at", "created_at")


class AssetEvents(_Contract):
    """Table ``asset_events``: a rep's or a buyer's use of an asset; durations in seconds."""

    event_id: Series[str] = pa.Field(unique=True)
    asset_id: Series[str] = pa.Field(metadata=_refs("assets.asset_id"))
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC, metadata=_PAST)
    event_type: Series[str] = pa.Field(isin=ASSET_EVENT_TYPES)
    user_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("users.user_id"))
    person_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("people.person_id"))
    account_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("accounts.account_id"))
    opp_id: Series[str] | None = pa.Field(nullable=True, metadata=_refs("opportunities.opp_id"))
    share_id: Series[str] | None = pa.Field(nullable=True)
    device: Series[str] | None = pa.Field(nullable=True)
    duration_s: Series[float] | None = pa.Field(nullable=True, ge=0)
    pages_viewed: Series[float] | None = pa.Field(nullable=True, ge=0)
    pages_total: Series[float] | None = pa.Field(nullable=True, gt=0)


class Assignments(_Contract):
    """Table ``assignments``: experiment arms; one arm per (experiment_id, unit_id)."""

    experiment_id: Series[str]
    unit_type: Series[str] = pa.Field(isin=UNIT_TYPES)
    unit_id: Series[str] = pa.Field(metadata={"references_by": {"unit_type": UNIT_REFERENCES}})
    arm: Series[str]
    assigned_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=_UTC)

    class Config:
        unique = ["experiment_id", "unit_id"]


#: The model of each contract table.
MODELS: dict[str, type[pa.DataFrameModel]] = {
    "accounts": Accounts,
    "people": People,
    "users": Users,
    "campaigns": Campaigns,
    "touchpoints": Touchpoints,
    "stage_events": StageEvents,
    "opportunities": Opportunities,
    "opportunity_people": OpportunityPeople,
    "assets": Assets,
    "asset_events": AssetEvents,
    "assignments": Assignments,
}

#: Logical column types and their pandas / DuckDB spellings.
PANDAS_DTYPES = {
    "string": "str",
    "timestamp": "datetime64[us, UTC]",
    "date": "datetime64[s]",
    "float": "float64",
    "boolean": "boolean",
}
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
}
_TYPE_RULES = {
    "timestamp": ("is_timestamp", "not an ISO 8601 timestamp"),
    "date": ("is_date", "not an ISO 8601 date"),
    "float": ("is_number", "not a number"),
    "boolean": ("is_boolean", "not true/false, 1/0 or yes/no"),
}
_PAIR_RULE = re.compile(r"(\w+)_not_before_(\w+)")


def _logical_type(dtype: Any) -> str:
    if isinstance(dtype, pandas_engine.DateTime):
        return "timestamp" if getattr(dtype, "tz", None) is not None else "date"
    if isinstance(dtype, pandas_engine.BOOL):
        return "boolean"
    if str(dtype).startswith("float"):
        return "float"
    return "string"


def _table_model(table: str) -> type[pa.DataFrameModel]:
    try:
        return MODELS[table]
    except KeyError:
        raise ValueError(f"table must be one of {', '.join(TABLES)}; got {table!r}") from None


@cache
def contract_columns(table: str) -> dict[str, str]:
    """Logical type of each contract column of ``table``, in contract order.

    Types are ``string``, ``timestamp`` (UTC), ``date``, ``float`` and ``boolean``; see
    :data:`PANDAS_DTYPES` and :data:`DUCKDB_TYPES` for their spellings.

    Examples
    --------
    >>> contract_columns("users")
    {'user_id': 'string', 'team': 'string', 'region': 'string', 'capacity_leads_per_week': 'float'}
    """
    schema = _table_model(table).to_schema()
    return {name: _logical_type(col.dtype) for name, col in schema.columns.items()}


def required_columns(table: str) -> tuple[str, ...]:
    """Columns of ``table`` that every file must have."""
    schema = _table_model(table).to_schema()
    return tuple(name for name, col in schema.columns.items() if col.required)


def references() -> list[tuple[str, str, str, str]]:
    """Every referential rule: ``(table, column, parent_table, parent_column)``.

    Each non-null value of ``table.column`` must exist in ``parent_table.parent_column``
    (rule ``exists_in_<parent_table>``). References whose parent depends on another column of
    the row are listed by :func:`typed_references`.
    """
    out = []
    for table in TABLES:
        for name, col in _table_model(table).to_schema().columns.items():
            target = (col.metadata or {}).get("references")
            if target:
                parent, parent_column = target.split(".")
                out.append((table, name, parent, parent_column))
    return out


def typed_references() -> list[tuple[str, str, str, str, tuple[tuple[str, str], ...]]]:
    """References whose parent is named by a type column of the same row.

    Returns
    -------
    list of tuple
        ``(table, column, type_column, type_value, parents)``: where ``type_column`` is
        ``type_value``, each non-null value of ``column`` must exist in at least one
        ``(parent_table, parent_column)`` of ``parents``; the rule is
        :func:`reference_rule` of ``parents``. The contract has one such column,
        ``assignments.unit_id`` by ``unit_type`` (:data:`UNIT_REFERENCES`).

    Examples
    --------
    >>> typed_references()[0]
    ('assignments', 'unit_id', 'unit_type', 'person', (('people', 'person_id'),))
    """
    out = []
    for table in TABLES:
        for name, col in _table_model(table).to_schema().columns.items():
            by = (col.metadata or {}).get("references_by") or {}
            for type_column, targets in by.items():
                for type_value, parents in targets.items():
                    pairs = tuple(tuple(p.split(".")) for p in parents)
                    out.append((table, name, type_column, type_value, pairs))
    return out


def reference_rule(parents: Sequence[tuple[str, str]]) -> str:
    """Rule name of a reference into ``parents``: ``exists_in_people``, or for several
    alternative parents ``exists_in_accounts_or_users``.

    Examples
    --------
    >>> reference_rule([("accounts", "region"), ("users", "region")])
    'exists_in_accounts_or_users'
    """
    return "exists_in_" + "_or_".join(parent for parent, _ in parents)


def _future_limit(now: datetime | None) -> pd.Timestamp:
    moment = pd.Timestamp(now if now is not None else datetime.now(UTC))
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment + FUTURE_SLACK


def contract_schema(table: str, now: datetime | None = None) -> pa.DataFrameSchema:
    """The pandera schema of ``table`` with its ``not_in_future`` checks bound to ``now``.

    Parameters
    ----------
    table : str
        Contract table name.
    now : datetime, optional
        Reference time (UTC; naive taken as UTC); default the current time. A timestamp
        more than :data:`FUTURE_SLACK` (1 hour) after it breaks ``not_in_future``.
    """
    schema = _table_model(table).to_schema()
    limit = _future_limit(now)
    for name, col in schema.columns.items():
        if (col.metadata or {}).get("not_in_future"):
            check = pa.Check(lambda s, limit=limit: s.isna() | (s <= limit), name="not_in_future")
            schema = schema.update_column(name, checks=[*col.checks, check])
    return schema


# --------------------------------------------------------------------------------------------
# Messages shared by both engines
# --------------------------------------------------------------------------------------------

_RULE_ORDER = (
    "one_file_per_table",
    "required_table",
    "readable_database",
    "readable_parquet",
    "readable_csv",
    "utf8_encoding",
    "unique_column_names",
    "row_matches_header",
    "has_rows",
    "required_column",
    "is_timestamp",
    "is_date",
    "is_number",
    "is_boolean",
    "not_null",
    "unique",
    "allowed_values",
    "non_negative",
    "positive",
    "email_is_hashed",
    "not_in_future",
)


def _rule_name(check: str) -> str:
    """The user's name of a pandera check (``isin([...])`` -> ``allowed_values``)."""
    if check in ("field_uniqueness", "multiple_fields_uniqueness"):
        return "unique"
    if check == "not_nullable":
        return "not_null"
    if check == "column_in_dataframe":
        return "required_column"
    base = check.split("(")[0]  # failure cases say "isin(['SMB', ...])", checks "isin"
    return {
        "isin": "allowed_values",
        "greater_than_or_equal_to": "non_negative",
        "greater_than": "positive",
    }.get(base, check)


def _detail(table: str, column: str | None, rule: str, now: datetime | None) -> str:
    """One short explanation of ``rule``, identical whichever engine found the problem."""
    if rule == "allowed_values" and column is not None:
        for check in _table_model(table).to_schema().columns[column].checks:
            if check.name == "isin":
                return "one of " + ", ".join(map(str, check.statistics["allowed_values"]))
    if rule in ("non_negative", "positive"):
        return ">= 0" if rule == "non_negative" else "> 0"
    if rule == "not_in_future":
        return f"after {_future_limit(now):%Y-%m-%d %H:%M} UTC, now + 1 hour"
    if rule == "email_is_hashed":
        return "64 hex characters, the SHA-256 of the address"
    if rule == "unique" and column is not None and "+" in column:
        return "the same pair appears more than once"
    if rule == "required_column":
        return "missing from the file"
    for type_rule, text in _TYPE_RULES.values():
        if rule == type_rule:
            return text
    match = _PAIR_RULE.fullmatch(rule)
    if match:
        return f"{match.group(1)} earlier than {match.group(2)}"
    return ""


def _error(
    table: str,
    file: str,
    column: str | None,
    rows: Sequence[int],
    rule: str,
    values: Iterable[Any] = (),
    now: datetime | None = None,
    n_rows: int | None = None,
) -> DataError:
    """A DataError with the shared detail text and at most MAX_ROWS_LISTED rows."""
    rows = sorted(set(int(r) for r in rows))
    total = n_rows if n_rows is not None else len(rows)
    kept = rows[:MAX_ROWS_LISTED]
    return DataError(
        file,
        column,
        kept,
        rule,
        _shown(values),
        _detail(table, column, rule, now),
        total if total != len(kept) else None,
    )


def _sort_key(table_order: Mapping[str, int], error: DataError, table: str) -> tuple:
    columns = list(contract_columns(table)) if table in MODELS else []
    column = (error.column or "").split("+")[0]
    col_rank = columns.index(column) if column in columns else (-1 if not column else 999)
    rule_rank = _RULE_ORDER.index(error.rule) if error.rule in _RULE_ORDER else 99
    # references of one column (assignments.unit_id by unit_type) are listed by row
    family = "exists_in_" if error.rule.startswith("exists_in_") else error.rule
    return (table_order.get(table, 99), col_rank, rule_rank, family, error.rows[:1], error.rule)


# --------------------------------------------------------------------------------------------
# Finding and reading table files
# --------------------------------------------------------------------------------------------


def _table_of(path: Path) -> str | None:
    for suffix in FILE_SUFFIXES:
        if path.name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            return stem if stem in MODELS else None
    return None


def _table_of_name(name: str) -> str | None:
    """Contract table of a file name, a table name or a ``database/table`` name."""
    name = name.rsplit("/", 1)[-1]
    return name if name in MODELS else _table_of(Path(name))


def _discover(folder: Path) -> tuple[dict[str, Path], list[DataError]]:
    """Table files of ``folder`` by table, and an error for each table with two files."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        table = _table_of(path)
        if table is not None and path.is_file():
            found.setdefault(table, []).append(path)
    files, errors = {}, []
    for table, paths in found.items():
        files[table] = paths[0]
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            detail = f"{names}: keep one file per table"
            errors.append(DataError(table, None, (), "one_file_per_table", detail=detail))
    return files, errors


def find_table_files(folder: str | Path) -> dict[str, Path]:
    """The file of each contract table present in ``folder`` (CSV, CSV.GZ or Parquet).

    Other files are ignored. Raises :class:`DataError` (``one_file_per_table``) when a
    table has two files, and ``NotADirectoryError``/``FileNotFoundError`` for a bad folder.
    """
    folder = _folder(folder)
    files, errors = _discover(folder)
    if errors:
        raise errors[0]
    return {t: files[t] for t in TABLES if t in files}


def _folder(path: str | Path) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(2, "No such file or directory", str(folder))
    if not folder.is_dir():
        raise NotADirectoryError(
            20, "Not a directory (expected a folder of table files)", str(folder)
        )
    return folder


def _is_csv(path: Path) -> bool:
    return path.name.endswith((".csv", ".csv.gz"))


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115


def is_empty_file(path: Path) -> bool:
    """True for a 0-byte file (or a .gz file that holds 0 bytes)."""
    if path.stat().st_size == 0:
        return True
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read(1) == b""
        except (OSError, EOFError):
            return False
    return False


def _read_header(path: Path) -> list[str] | None:
    """The CSV header's column names (BOM stripped), or None for a file with no header."""
    with _open_bytes(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        for record in csv.reader(text):
            if record:
                return record
    return None


def _locate_non_utf8(path: Path) -> tuple[int, int, bytes] | None:
    """``(byte offset, 1-based line, bad byte)`` of the first byte that is not UTF-8, or None.

    Offsets count from the start of the (decompressed) data. Reads the file in 1 MiB chunks.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = newlines = 0
    with _open_bytes(path) as fh:
        while True:
            chunk = fh.read(1 << 20)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                line = newlines + data[: exc.start].count(b"\n") + 1
                return consumed - len(pending) + exc.start, line, data[exc.start : exc.start + 1]
            if not chunk:
                return None
            newlines += chunk.count(b"\n")
            consumed += len(chunk)


def _row_at_offset(path: Path, offset: int) -> int:
    """Data row (1-based, after the header) holding the byte at ``offset``.

    Counts CSV records in the valid prefix, so quoted values spanning lines stay one row.
    """
    with _open_bytes(path) as fh:
        prefix = fh.read(offset).decode("utf-8-sig")
    records = [r for r in csv.reader(io.StringIO(prefix, newline="")) if r]
    partial = prefix and not prefix.endswith(("\n", "\r"))
    record = len(records) if partial else len(records) + 1
    return max(record - 1, 1)


def _rows_with_wrong_field_count(path: Path, n_fields: int) -> tuple[list[int], list[int]]:
    """Data rows (1-based) whose number of fields differs from the header, and their counts."""
    rows, counts = [], []
    with _open_bytes(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        next(reader, None)
        row = 0
        for record in reader:
            if not record:
                continue
            row += 1
            if len(record) != n_fields:
                rows.append(row)
                counts.append(len(record))
    return rows, counts


def _diagnose_csv(table: str, path: Path, header: Sequence[str], message: str) -> list[DataError]:
    """Explain why a CSV could not be read: not UTF-8, ragged rows, or the reader's message."""
    try:
        return _diagnose_readable_csv(path, header, message)
    except (OSError, EOFError, csv.Error) as exc:  # a corrupt .gz, a file that vanished
        return [DataError(path.name, None, (), "readable_csv", detail=str(exc)[:200])]


def _diagnose_readable_csv(path: Path, header: Sequence[str], message: str) -> list[DataError]:
    file = path.name
    bad = _locate_non_utf8(path)
    if bad is not None:
        offset, line, byte = bad
        row = _row_at_offset(path, offset) if offset < (256 << 20) else max(line - 1, 1)
        where = "of the decompressed data " if path.name.endswith(".gz") else ""
        detail = (
            f"the file is not UTF-8: byte 0x{byte.hex()} at byte offset {offset} {where}"
            f"on line {line}; save it as UTF-8"
        )
        return [DataError(file, None, (row,), "utf8_encoding", detail=detail)]
    rows, counts = _rows_with_wrong_field_count(path, len(header))
    if rows:
        detail = f"{len(header)} fields in the header"
        values = [f"{c} fields" for c in counts]
        return [_error_raw(file, rows, "row_matches_header", values, detail)]
    first_line = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return [DataError(file, None, (), "readable_csv", detail=first_line)]


def _error_raw(
    file: str, rows: Sequence[int], rule: str, values: Sequence[str], detail: str
) -> DataError:
    total = len(rows)
    kept = list(rows)[:MAX_ROWS_LISTED]
    shown = tuple(dict.fromkeys(values))[:MAX_EXAMPLES]
    return DataError(file, None, kept, rule, shown, detail, total if total != len(kept) else None)


def _check_header(file: str, header: Sequence[str]) -> list[DataError]:
    seen, dups = set(), []
    for name in header:
        if name in seen and name not in dups:
            dups.append(name)
        seen.add(name)
    if dups:
        detail = "each column name may appear once in the header"
        return [DataError(file, None, (), "unique_column_names", tuple(map(repr, dups)), detail)]
    return []


def _read_csv_strings(table: str, path: Path) -> tuple[pd.DataFrame | None, list[DataError]]:
    """Every column of a CSV as text (empty cells null), index = data row numbers from 1."""
    file = path.name
    try:
        header = _read_header(path)
    except UnicodeDecodeError:
        return None, _diagnose_csv(table, path, [], "")
    except (OSError, EOFError, csv.Error) as exc:
        return None, [DataError(file, None, (), "readable_csv", detail=str(exc))]
    if header is None:
        return _empty_frame(table), []
    errors = _check_header(file, header)
    if errors:
        return None, errors
    invalid: list[int] = []

    def _skip(row: Any) -> str:
        invalid.append(1)
        return "skip"

    try:
        data = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=header, skip_rows=1),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=_skip),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa_arrow.string() for name in header},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pa_arrow.ArrowInvalid, OSError, EOFError) as exc:
        return None, _diagnose_csv(table, path, header, str(exc))
    if invalid:
        return None, _diagnose_csv(table, path, header, "rows with the wrong number of fields")
    frame = data.to_pandas()
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame, []


def _read_parquet_frame(table: str, path: Path) -> tuple[pd.DataFrame | None, list[DataError]]:
    """A Parquet file as pandas (dates as datetime64), index = row numbers from 1."""
    try:
        data = pq.read_table(path)
    except (pa_arrow.ArrowException, OSError, ValueError) as exc:
        return None, [_unreadable_parquet(path, exc)]
    frame = data.to_pandas(date_as_object=False)
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame, []


def _unreadable_parquet(path: Path, exc: BaseException) -> DataError:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return DataError(path.name, None, (), "readable_parquet", detail=first_line[:200])


def _empty_frame(table: str) -> pd.DataFrame:
    """A frame with no rows and every contract column of ``table`` in its contract dtype."""
    return pd.DataFrame(
        {
            name: pd.Series(dtype=PANDAS_DTYPES[kind])
            for name, kind in contract_columns(table).items()
        }
    )


# --------------------------------------------------------------------------------------------
# Parsing columns into the contract types (pandas)
# --------------------------------------------------------------------------------------------


def _as_text(values: pd.Series) -> pd.Series:
    """Values as text (str dtype), nulls kept; integral floats lose their ``.0``."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        return values
    if pd.api.types.is_integer_dtype(values) and not values.hasnans:
        return values.astype("str")

    def _one(v: Any) -> Any:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        return str(v)

    return pd.Series([_one(v) for v in values], index=values.index, dtype="str")


def _blank_to_null(values: pd.Series) -> pd.Series:
    """Text values stripped, blank ones null (for columns that are not text)."""
    text = _as_text(values).str.strip(_WHITESPACE)
    return text.where(text != "")


def _parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """UTC timestamps (naive taken as UTC) and a mask of unparseable cells."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.as_unit("us"), pd.Series(False, index=values.index)
    if pd.api.types.is_datetime64_dtype(values):
        parsed = values.dt.tz_localize("UTC").dt.as_unit("us")
        return parsed, pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        failed = values.notna()
        return pd.Series(pd.NaT, index=values.index, dtype=PANDAS_DTYPES["timestamp"]), failed
    text = _blank_to_null(values)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").dt.as_unit("us")
    return parsed, text.notna() & parsed.isna()


def _parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Calendar days (midnight, no zone; a timestamp's UTC day) and unparseable cells."""
    stamps, failed = _parse_timestamps(values)
    days = stamps.dt.tz_convert(None).dt.floor("D").astype(PANDAS_DTYPES["date"])
    return days, failed


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64"), pd.Series(False, index=values.index)
    text = _blank_to_null(values)
    parsed = pd.to_numeric(text, errors="coerce").astype("float64")
    return parsed, text.notna() & parsed.isna()


def _parse_booleans(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Flags: true/false, 1/0, yes/no in any case (contract); unparseable cells flagged."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean"), pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        mapped = values.map({1: True, 0: False}).astype("boolean")
        return mapped, values.notna() & mapped.isna()
    text = _blank_to_null(values).str.lower()
    mapping = dict.fromkeys(_TRUE, True) | dict.fromkeys(_FALSE, False)
    mapped = text.map(mapping).astype("boolean")
    return mapped, text.notna() & mapped.isna()


_PARSERS = {
    "timestamp": _parse_timestamps,
    "date": _parse_dates,
    "float": _parse_numbers,
    "boolean": _parse_booleans,
}


def _hash_email_column(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Replace a raw ``email`` column by ``email_hash`` (kept where given); count the emails.

    ``email_hash`` takes the position of ``email`` when it was not in the file already.
    """
    if "email" not in frame.columns:
        return frame, 0
    emails = frame["email"]
    hashed = pd.Series([hash_email(v) for v in emails], index=frame.index, dtype="str")
    n_emails = int(hashed.notna().sum())
    if "email_hash" in frame.columns:
        frame = frame.assign(email_hash=_as_text(frame["email_hash"]).fillna(hashed))
        return frame.drop(columns="email"), n_emails
    frame = frame.assign(email=hashed).rename(columns={"email": "email_hash"})
    return frame, n_emails


@dataclass
class _Parsed:
    """A table read into pandas: typed frame (index = file rows) and what went wrong."""

    frame: pd.DataFrame | None
    errors: list[DataError] = field(default_factory=list)
    failed: dict[str, set[int]] = field(default_factory=dict)  # type errors per column
    n_emails: int = 0


def _parse_frame(table: str, file: str, raw: pd.DataFrame) -> _Parsed:
    """Contract columns of ``raw`` parsed into their types; unparseable cells become errors."""
    frame, n_emails = _hash_email_column(raw)
    parsed = _Parsed(frame=None, n_emails=n_emails)
    columns: dict[str, pd.Series] = {}
    for name, kind in contract_columns(table).items():
        if name not in frame.columns:
            continue
        if kind == "string":
            columns[name] = _as_text(frame[name])
            continue
        values, failed = _PARSERS[kind](frame[name])
        columns[name] = values
        if failed.any():
            rows = frame.index[failed.to_numpy()]
            parsed.failed[name] = set(int(r) for r in rows)
            rule = _TYPE_RULES[kind][0]
            parsed.errors.append(_error(table, file, name, rows, rule, frame[name][failed]))
    parsed.frame = frame.assign(**columns) if columns else frame
    return parsed


def _read_parsed(table: str, path: Path) -> _Parsed:
    """Read one table file into pandas, parsed into the contract types (index = file rows)."""
    if is_empty_file(path):
        return _Parsed(frame=_empty_frame(table))
    reader = _read_csv_strings if _is_csv(path) else _read_parquet_frame
    raw, errors = reader(table, path)
    if raw is None:
        return _Parsed(frame=None, errors=errors)
    return _parse_frame(table, path.name, raw)


def read_table(path: str | Path, table: str | None = None) -> pd.DataFrame:
    """Read one table file (CSV, CSV.GZ or Parquet) into pandas with the contract's dtypes.

    Parameters
    ----------
    path : str or Path
        ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet``.
    table : str, optional
        Contract table; default taken from the file name.

    Returns
    -------
    pandas.DataFrame
        The file's columns, contract columns in the contract dtypes (:data:`PANDAS_DTYPES`):
        ids as ``str``, timestamps ``datetime64[us, UTC]``, dates ``datetime64[s]``, numbers
        ``float64``, flags nullable ``boolean``; extra columns as read. A raw ``email``
        column is replaced by ``email_hash``. Index 0..n-1 (file row = index + 1). A 0-byte
        file gives an empty frame with every contract column.

    Raises
    ------
    DataError
        When the file cannot be read (not UTF-8, ragged rows, corrupt Parquet) or a value
        cannot be parsed into its column's type. The other rules of the contract (required
        columns, uniqueness, references...) are checked by :func:`validate_folder`.

    Notes
    -----
    CSV: UTF-8, comma-separated, double-quoted, header row; empty cells are null (the text
    ``NA`` is a value); timestamps ISO 8601 with or without an offset (without: UTC); flags
    true/false, 1/0 or yes/no in any case.
    """
    path = Path(path)
    table = table or _table_of(path)
    if table is None:
        raise ValueError(
            f"cannot tell the table of {path.name}: name it <table>.csv, .csv.gz or .parquet "
            f"with a table among {', '.join(TABLES)}, or pass table="
        )
    parsed = _read_parsed(table, path)
    if parsed.errors:
        raise parsed.errors[0]
    assert parsed.frame is not None
    return parsed.frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Per-table rules through pandera (tables up to big_rows rows)
# --------------------------------------------------------------------------------------------


def _frame_rule_column(rule: str) -> str | None:
    match = _PAIR_RULE.fullmatch(rule)
    return match.group(1) if match else None


def _errors_from_failures(
    table: str,
    file: str,
    frame: pd.DataFrame,
    cases: pd.DataFrame,
    skip: Mapping[str, set[int]],
    now: datetime | None,
) -> list[DataError]:
    """Turn pandera's ``failure_cases`` into DataErrors (one per column and rule)."""
    errors: list[DataError] = []
    cases = cases.assign(check=cases["check"].astype(str))
    frame_level = cases["schema_context"].astype(str) == "DataFrameSchema"
    for check, group in cases[frame_level].groupby("check", sort=False):
        if check == "column_in_dataframe":
            for name in dict.fromkeys(group["failure_case"].astype(str)):
                errors.append(_error(table, file, name, (), "required_column", now=now))
            continue
        rows = sorted(set(int(i) for i in group["index"].dropna()))
        if check == "multiple_fields_uniqueness":
            keys = list(_table_model(table).to_schema().unique or [])
            values = frame.loc[rows, keys].astype(str).agg(" / ".join, axis=1)
            errors.append(_error(table, file, "+".join(keys), rows, "unique", values, now))
            continue
        column = _frame_rule_column(check)
        values = frame.loc[rows, column] if column in frame.columns else ()
        errors.append(_error(table, file, column, rows, check, values, now))
    for (column, check), group in cases[~frame_level].groupby(["column", "check"], sort=False):
        rule = _rule_name(check)
        if group["index"].isna().all():  # a whole-column failure (a dtype): no rows to name
            errors.append(_error(table, file, column, (), rule, group["failure_case"], now))
            continue
        group = group[group["index"].notna()]
        if rule in ("not_null",):
            group = group[~group["index"].astype(int).isin(skip.get(column, set()))]
        if rule == "unique":
            group = group[group["failure_case"].notna()]
        if group.empty:
            continue
        rows = group["index"].astype(int)
        errors.append(_error(table, file, column, rows, rule, group["failure_case"], now))
    return errors


def check_frame(
    table: str,
    frame: pd.DataFrame,
    *,
    file: str | None = None,
    now: datetime | None = None,
) -> list[DataError]:
    """Every broken per-table rule of ``frame`` (one table, already in memory).

    Parameters
    ----------
    table : str
        Contract table the frame holds.
    frame : pandas.DataFrame
        The table; text or typed columns (text is parsed as a CSV would be). Row numbers
        in the errors are positions from 1.
    file : str, optional
        Name used in the errors; default ``<table>.csv``.
    now : datetime, optional
        Reference time for ``not_in_future`` (default: the current time, UTC).

    Returns
    -------
    list of DataError
        Type, required-column, not-null, uniqueness, allowed-value, range, e-mail hash,
        not-in-future and cross-column rules. References between tables are not checked
        here (see :func:`validate_folder`).
    """
    file = file or f"{table}.csv"
    raw = frame.set_axis(pd.RangeIndex(1, len(frame) + 1), axis=0)
    parsed = _parse_frame(table, file, raw)
    assert parsed.frame is not None
    errors = parsed.errors + _check_parsed(table, file, parsed, now)
    return _sorted_errors(errors, {table: file})


def _check_parsed(table: str, file: str, parsed: _Parsed, now: datetime | None) -> list[DataError]:
    schema = contract_schema(table, now)
    try:
        schema.validate(parsed.frame, lazy=True)
    except SchemaErrors as exc:
        return _errors_from_failures(
            table, file, parsed.frame, exc.failure_cases, parsed.failed, now
        )
    return []


# --------------------------------------------------------------------------------------------
# DuckDB: typed sources, per-table rules in SQL for big tables, references, warnings
# --------------------------------------------------------------------------------------------


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def source_sql(path: str | Path) -> str:
    """A DuckDB table function reading ``path`` as it is (CSV: all columns as VARCHAR).

    CSV files are read with the header from the file, comma delimiter, double quotes and
    empty cells as NULL, exactly as :func:`read_table` does; column names come from the
    header read by Python, so the result does not depend on DuckDB's sniffer.
    """
    path = Path(path).resolve()
    if not _is_csv(path):
        return f"read_parquet({_lit(str(path))})"
    header = _read_header(path) or []
    columns = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in header) + "}"
    return (
        f"read_csv({_lit(str(path))}, header=true, auto_detect=false, delim=',', quote='\"', "
        f"escape='\"', columns={columns}, nullstr='')"
    )


def _typed_expr(column: str, kind: str, source_type: str, strict: bool) -> str:
    """SQL for one contract column in its contract type (TRY_CAST unless ``strict``)."""
    cast = "CAST" if strict else "TRY_CAST"
    col = _q(column)
    text = source_type.upper() == "VARCHAR"
    temporal = source_type.upper().startswith(("TIMESTAMP", "DATE"))
    numeric = source_type.upper() in (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
        "REAL",
    ) or source_type.upper().startswith("DECIMAL")
    if kind == "string":
        if text:
            return col
        if source_type.upper() in ("FLOAT", "DOUBLE", "REAL"):
            return (
                f"CASE WHEN {col} = floor({col}) THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) "
                f"ELSE CAST({col} AS VARCHAR) END"
            )
        return f"CAST({col} AS VARCHAR)"
    blank = f"NULLIF(trim({col}, {_lit(_WHITESPACE)}), '')" if text else col
    if kind == "timestamp":
        if text or temporal:
            return f"{cast}({blank} AS TIMESTAMPTZ)"
        return f"CAST({col} AS TIMESTAMPTZ)" if strict else "CAST(NULL AS TIMESTAMPTZ)"
    if kind == "date":
        if text or temporal:
            return f"CAST({cast}({blank} AS TIMESTAMPTZ) AS DATE)"
        return f"CAST({col} AS DATE)" if strict else "CAST(NULL AS DATE)"
    if kind == "float":
        return f"{cast}({blank} AS DOUBLE)"
    if kind == "boolean":
        if source_type.upper() == "BOOLEAN":
            return col
        if text:
            fallback = f"CAST({blank} AS BOOLEAN)" if strict else "NULL"
            return (
                f"CASE WHEN lower({blank}) IN ('true', '1', 'yes') THEN TRUE "
                f"WHEN lower({blank}) IN ('false', '0', 'no') THEN FALSE "
                f"ELSE {fallback} END"
            )
        if numeric:
            fallback = f"CAST({col} AS BOOLEAN)" if strict else "NULL"
            return f"CASE WHEN {col} = 1 THEN TRUE WHEN {col} = 0 THEN FALSE ELSE {fallback} END"
        return f"CAST({col} AS BOOLEAN)" if strict else "CAST(NULL AS BOOLEAN)"
    raise ValueError(f"unknown column type {kind!r}")


def _email_hash_sql(has_hash: str | None) -> str:
    trimmed = f"NULLIF(lower(trim(\"email\", {_lit(_WHITESPACE)})), '')"
    hashed = f"sha256({trimmed})"
    return f"COALESCE({has_hash}, {hashed})" if has_hash else hashed


def typed_select_sql(
    table: str,
    source: str,
    source_types: Mapping[str, str],
    *,
    strict: bool = True,
    extra: Sequence[str] = (),
) -> str:
    """``SELECT`` of a table's columns in the contract types, from a raw ``source``.

    Parameters
    ----------
    table : str
        Contract table.
    source : str
        SQL ``FROM`` item holding the raw columns (a table function, view or table).
    source_types : mapping of str to str
        Raw column name -> DuckDB type, in file order.
    strict : bool, default True
        ``CAST`` (a bad value fails the query) or ``TRY_CAST`` (a bad value becomes NULL).
    extra : sequence of str
        More select items appended as they are (``_row`` for validation).

    Notes
    -----
    Columns keep the file's order; extra columns keep their raw type. A raw ``email`` column
    becomes ``email_hash`` (SHA-256 of the trimmed, lower-cased address, the file's own
    ``email_hash`` winning where both are given) and is never selected. Timestamps are
    ``TIMESTAMPTZ``: the connection's TimeZone must be UTC for naive values to be read as UTC.
    """
    kinds = contract_columns(table)
    items: list[str] = []
    for name, source_type in source_types.items():
        if name == "email":
            if "email_hash" in source_types:
                continue
            items.append(f'{_email_hash_sql(None)} AS "email_hash"')
        elif name == "email_hash" and "email" in source_types:
            own = _typed_expr(name, "string", source_types[name], strict)
            items.append(f'{_email_hash_sql(own)} AS "email_hash"')
        elif name in kinds:
            items.append(f"{_typed_expr(name, kinds[name], source_type, strict)} AS {_q(name)}")
        else:
            items.append(_q(name))
    items += list(extra)
    return f"SELECT {', '.join(items)} FROM {source}"


def empty_select_sql(table: str, extra: Sequence[str] = ()) -> str:
    """``SELECT`` with no rows and every contract column of ``table`` in its type."""
    items = [
        f"CAST(NULL AS {DUCKDB_TYPES[kind]}) AS {_q(name)}"
        for name, kind in contract_columns(table).items()
    ]
    return f"SELECT {', '.join(items + list(extra))} WHERE false"


def table_view_sql(con: duckdb.DuckDBPyConnection, table: str, path: str | Path) -> str:
    """``SELECT`` reading one table file in the contract types (strict casts, e-mails hashed).

    A 0-byte file gives no rows and every contract column; a CSV is read with all columns
    as text and cast per the contract (an id that looks numeric stays text). ``con`` is
    used to look up the file's columns; its TimeZone must be UTC (:func:`connect_duckdb`).
    """
    path = Path(path)
    if is_empty_file(path):
        return empty_select_sql(table)
    try:
        source = source_sql(path)
    except UnicodeDecodeError:
        raise _diagnose_csv(table, path, [], "")[0] from None
    return typed_select_sql(table, source, _describe(con, source), strict=True)


def connect_duckdb(
    database: str = ":memory:", *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with TimeZone UTC (naive timestamps are read as UTC)."""
    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    disable_progress_bar(con)
    return con


def disable_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    """Turn DuckDB's progress bar off (the package never prints).

    Inside a Jupyter kernel DuckDB 1.x refuses to change the setting unless ipywidgets is
    installed; there its bar is a widget that never reaches stdout, so the refusal is ignored.
    """
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:
        log.debug("DuckDB progress bar left as is (no ipywidgets in this kernel)")


def _describe(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return {name: str(kind) for name, kind, *_ in rows}


@dataclass
class _Loaded:
    """One table as registered in the validation connection (view ``"<table>"`` with _row)."""

    table: str
    file: str
    rows: int
    columns: tuple[str, ...]
    engine: str
    errors: list[DataError]
    n_emails: int = 0
    readable: bool = True


def _register_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    data = pa_arrow.Table.from_pandas(frame.reset_index(names="_row"), preserve_index=False)
    con.register(f"_df_{table}", data)
    con.execute(f"CREATE OR REPLACE VIEW {_q(table)} AS SELECT * FROM {_q('_df_' + table)}")


def _estimate_rows(path: Path) -> int:
    """Rows of a table file: exact for Parquet (metadata), estimated for CSV from its size.

    CSV: file size over the mean line length of the first MiB (gzip: times 4, a typical
    compression ratio). Only used to choose the validation engine.
    """
    if not _is_csv(path):
        return pq.ParquetFile(path).metadata.num_rows
    with _open_bytes(path) as fh:
        sample = fh.read(1 << 20)
    lines = max(sample.count(b"\n"), 1)
    size = path.stat().st_size * (4 if path.name.endswith(".gz") else 1)
    return int(size / (len(sample) / lines)) if sample else 0


def _load_with_pandera(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, now: datetime | None
) -> _Loaded:
    parsed = _read_parsed(table, path)
    if parsed.frame is None:
        return _Loaded(table, path.name, 0, (), "pandera", parsed.errors, readable=False)
    errors = parsed.errors + _check_parsed(table, path.name, parsed, now)
    _register_frame(con, table, parsed.frame)
    columns = tuple(str(c) for c in parsed.frame.columns)
    return _Loaded(
        table, path.name, len(parsed.frame), columns, "pandera", errors, parsed.n_emails
    )


def _sql_raw(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> str:
    """Register the raw file with a ``_row`` column (1-based file row); return its name.

    Parquet is scanned in place (``file_row_number``); CSV is loaded once into a temporary
    table whose insertion order is the file's order (``rowid``).
    """
    name = _q(f"_raw_{table}")
    if _is_csv(path):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_q('_csv_' + table)} AS "
            f"SELECT * FROM {source_sql(path)}"
        )
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT *, rowid + 1 AS _row "
            f"FROM {_q('_csv_' + table)}"
        )
    else:
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (file_row_number), "
            f"file_row_number + 1 AS _row FROM read_parquet({_lit(str(path.resolve()))}, "
            "file_row_number=true)"
        )
    return name


def _load_with_sql(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, now: datetime | None
) -> _Loaded:
    file = path.name
    if _is_csv(path):
        try:
            header = _read_header(path) or []
        except UnicodeDecodeError:
            return _Loaded(
                table, file, 0, (), "duckdb", _diagnose_csv(table, path, [], ""), readable=False
            )
        errors = _check_header(file, header)
        if errors:
            return _Loaded(table, file, 0, (), "duckdb", errors, readable=False)
    try:
        raw = _sql_raw(con, table, path)
        types = _describe(con, raw)
    except duckdb.Error as exc:
        if _is_csv(path):
            errors = _diagnose_csv(table, path, header, str(exc))
        else:
            errors = [_unreadable_parquet(path, exc)]
        return _Loaded(table, file, 0, (), "duckdb", errors, readable=False)
    return _check_raw_sql(con, table, file, raw, types, now)


def _check_raw_sql(
    con: duckdb.DuckDBPyConnection,
    table: str,
    file: str,
    raw: str,
    types: Mapping[str, str],
    now: datetime | None,
) -> _Loaded:
    """Type, check and register a raw relation (with ``_row``) as view ``"<table>"``."""
    types = {c: t for c, t in types.items() if c != "_row"}
    raw_items = [f"{_q(c)} AS {_q('_raw_' + c)}" for c in types if c != "email"]
    select = typed_select_sql(table, raw, types, strict=False, extra=["_row", *raw_items])
    con.execute(f"CREATE OR REPLACE VIEW {_q('_chk_' + table)} AS {select}")
    columns = [c for c in _describe(con, _q("_chk_" + table)) if not c.startswith("_")]
    con.execute(
        f"CREATE OR REPLACE VIEW {_q(table)} AS SELECT {', '.join(map(_q, columns))}, _row "
        f"FROM {_q('_chk_' + table)}"
    )
    rows = con.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]
    n_emails = 0
    if "email" in types:
        n_emails = con.execute(f"SELECT count({_email_hash_sql(None)}) FROM {raw}").fetchone()[0]
    errors = _check_sql(con, table, file, types, now)
    return _Loaded(table, file, rows, tuple(columns), "duckdb", errors, n_emails)


def _sql_failures(
    con: duckdb.DuckDBPyConnection, source: str, predicate: str, value: str
) -> tuple[list[int], list[Any], int]:
    """Rows (first MAX_ROWS_LISTED), their values and the total where ``predicate`` holds."""
    result = con.execute(
        f"SELECT _row, {value} AS v, count(*) OVER () AS n FROM {source} WHERE {predicate} "
        f"ORDER BY _row LIMIT {MAX_ROWS_LISTED}"
    ).fetchall()
    if not result:
        return [], [], 0
    return [r[0] for r in result], [r[1] for r in result], result[0][2]


def _sql_check_predicate(column: str, check: pa.Check) -> str:
    """SQL that is TRUE where ``check`` fails, for the checks the contract uses."""
    col = _q(column)
    stats = check.statistics or {}
    if check.name == "isin":
        allowed = ", ".join(_lit(str(v)) for v in stats["allowed_values"])
        return f"{col} IS NOT NULL AND {col} NOT IN ({allowed})"
    if check.name == "greater_than_or_equal_to":
        return f"{col} < {float(stats['min_value'])!r}"
    if check.name == "greater_than":
        return f"{col} <= {float(stats['min_value'])!r}"
    if check.name == "email_is_hashed":
        return f"{col} IS NOT NULL AND NOT regexp_full_match({col}, {_lit(_HEX64)})"
    raise NotImplementedError(f"no SQL for check {check.name!r} on {column}")


def _check_sql(
    con: duckdb.DuckDBPyConnection,
    table: str,
    file: str,
    raw_types: Mapping[str, str],
    now: datetime | None,
) -> list[DataError]:
    """The per-table rules of the pandera model, as SQL over view ``_chk_<table>``."""
    schema = _table_model(table).to_schema()
    kinds = contract_columns(table)
    view = _q(f"_chk_{table}")
    present = set(raw_types) | ({"email_hash"} if "email" in raw_types else set())
    errors: list[DataError] = []

    def add(column: str | None, rule: str, predicate: str, value: str, source: str = view) -> None:
        rows, values, total = _sql_failures(con, source, predicate, value)
        if rows:
            errors.append(_error(table, file, column, rows, rule, values, now, total))

    limit = _future_limit(now)
    for name, col in schema.columns.items():
        if name not in present:
            if col.required:
                errors.append(_error(table, file, name, (), "required_column", now=now))
            continue
        typed, raw = _q(name), _q(f"_raw_{name}")
        kind = kinds[name]
        has_raw = name in raw_types
        if kind != "string" and has_raw:
            blank = raw
            if raw_types[name].upper() == "VARCHAR":
                blank = f"NULLIF(trim({raw}, {_lit(_WHITESPACE)}), '')"
            add(name, _TYPE_RULES[kind][0], f"{blank} IS NOT NULL AND {typed} IS NULL", raw)
            null = f"{blank} IS NULL"
        else:
            null = f"{typed} IS NULL"
        if not col.nullable:
            add(name, "not_null", null, "NULL")
        if col.unique:
            dup = (
                f"{typed} IN (SELECT {typed} FROM {view} WHERE {typed} IS NOT NULL "
                f"GROUP BY {typed} HAVING count(*) > 1)"
            )
            add(name, "unique", dup, typed)
        for check in col.checks:
            add(name, _rule_name(check.name), _sql_check_predicate(name, check), typed)
        if (col.metadata or {}).get("not_in_future"):
            add(name, "not_in_future", f"{typed} > TIMESTAMPTZ {_lit(limit.isoformat())}", typed)
    for check in schema.checks:
        match = _PAIR_RULE.fullmatch(check.name)
        if match is None:
            raise NotImplementedError(f"no SQL for check {check.name!r} on {table}")
        later, earlier = match.groups()
        if later in present and earlier in present:
            add(later, check.name, f"{_q(later)} < {_q(earlier)}", _q(later))
    keys = list(schema.unique or [])
    if keys and all(k in present for k in keys):
        cols = ", ".join(map(_q, keys))
        source = (
            f"{view} JOIN (SELECT {cols} FROM {view} GROUP BY ALL HAVING count(*) > 1) "
            f"USING ({cols})"
        )
        value = "concat_ws(' / ', " + ", ".join(f"CAST({_q(k)} AS VARCHAR)" for k in keys) + ")"
        add("+".join(keys), "unique", "true", value, source)
    return errors


def _usable_parent(item: _Loaded | None, column: str) -> bool:
    """A parent table can be checked against: present, readable, with rows and ``column``."""
    return item is not None and item.readable and item.rows > 0 and column in item.columns


def _check_references(
    con: duckdb.DuckDBPyConnection, loaded: Mapping[str, _Loaded], now: datetime | None
) -> list[DataError]:
    """``exists_in_<parent>``: every non-null reference is a key of its parent table.

    Plain references (:func:`references`) and typed ones (:func:`typed_references`:
    ``assignments.unit_id`` by ``unit_type``) are checked alike. Skipped when the child
    column (or its type column) is absent, the child table has no rows, or no parent is
    usable; a parent is usable when its table is present, readable, has rows and has the
    column (an absent optional table is fine; an absent required one is already an error).
    A reference with alternative parents (a region of accounts or users) is checked against
    the usable ones: the value must exist in at least one.
    """
    checks: list[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, str] | None]] = [
        (table, column, ((parent, parent_column),), None)
        for table, column, parent, parent_column in references()
    ]
    checks += [
        (table, column, parents, (type_column, type_value))
        for table, column, type_column, type_value, parents in typed_references()
    ]
    errors = []
    for table, column, parents, when in checks:
        child = loaded.get(table)
        if child is None or not child.readable or child.rows == 0:
            continue
        if column not in child.columns or (when is not None and when[0] not in child.columns):
            continue
        usable = [(p, pc) for p, pc in parents if _usable_parent(loaded.get(p), pc)]
        if not usable:
            continue
        col = _q(column)
        conditions = [f"c.{col} IS NOT NULL"]
        if when is not None:
            conditions.insert(0, f"c.{_q(when[0])} = {_lit(when[1])}")
        conditions += [
            f"NOT EXISTS (SELECT 1 FROM {_q(p)} p WHERE p.{_q(pc)} = c.{col})" for p, pc in usable
        ]
        rows, values, total = _sql_failures(
            con, f"{_q(table)} c", " AND ".join(conditions), f"c.{col}"
        )
        if not rows:
            continue
        rule = reference_rule(parents)
        error = _error(table, child.file, column, rows, rule, values, now, total)
        detail = "no such " + " or ".join(f"{p}.{pc}" for p, pc in usable)
        if when is not None:
            detail = f"{when[0]} {when[1]}: {detail}"
        errors.append(
            DataError(
                error.file,
                error.column,
                error.rows,
                error.rule,
                error.values,
                detail,
                error.n_rows,
            )
        )
    return errors


# --------------------------------------------------------------------------------------------
# Warnings: quirks that break no rule
# --------------------------------------------------------------------------------------------


def _fmt_ts(value: Any) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M") if value is not None else "?"


def _warn_stage_order(con: duckdb.DuckDBPyConnection, file: str) -> DataWarning | None:
    """Persons whose first entry to a later funnel stage precedes that of an earlier one.

    Only the first entry to each stage counts, so a recycled lead entering Lead again later
    is not out of order; Disqualified and Recycled are not funnel stages.
    """
    ranks = ", ".join(f"({_lit(s)}, {i})" for i, s in enumerate(FUNNEL_STAGES))
    firsts = (
        "SELECT person_id, stage, r.rank, min(entered_at) AS first_at FROM stage_events "
        f"JOIN (VALUES {ranks}) r(stage, rank) USING (stage) "
        "WHERE person_id IS NOT NULL AND entered_at IS NOT NULL GROUP BY ALL"
    )
    earlier_max = (
        "max(first_at) OVER (PARTITION BY person_id ORDER BY rank "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _stage_firsts AS {firsts}; "
        "CREATE OR REPLACE TEMP TABLE _out_of_order AS SELECT DISTINCT person_id FROM ("
        f"SELECT person_id, first_at < {earlier_max} AS is_early FROM _stage_firsts"
        ") WHERE is_early"
    )
    count = con.execute("SELECT count(*) FROM _out_of_order").fetchone()[0]
    if not count:
        return None
    pairs = con.execute(
        "WITH f AS (SELECT * FROM _stage_firsts WHERE person_id IN "
        f"(SELECT person_id FROM _out_of_order ORDER BY person_id LIMIT {MAX_EXAMPLES})) "
        "SELECT b.person_id, b.stage, b.first_at, a.stage, a.first_at FROM f a JOIN f b "
        "ON a.person_id = b.person_id AND a.rank < b.rank AND b.first_at < a.first_at "
        "ORDER BY b.person_id, b.rank, a.rank"
    ).fetchall()
    examples, seen = [], set()
    for person, later, later_at, earlier, earlier_at in pairs:
        if person not in seen:
            seen.add(person)
            examples.append(
                f"{person}: {later} at {_fmt_ts(later_at)} "
                f"before {earlier} at {_fmt_ts(earlier_at)}"
            )
    con.execute("DROP TABLE _stage_firsts; DROP TABLE _out_of_order")
    return DataWarning(file, "entered_at", "stage_out_of_order", count, tuple(examples), "persons")


def _warn_stage_duplicates(
    con: duckdb.DuckDBPyConnection, file: str, columns: Sequence[str]
) -> DataWarning | None:
    """Exact duplicate stage events (every column equal); counts the extra copies."""
    cols = ", ".join(_q(c) for c in columns)
    groups = con.execute(
        f"SELECT person_id, stage, entered_at, count(*) AS n, sum(count(*) - 1) OVER () "
        f"FROM stage_events GROUP BY {cols} HAVING count(*) > 1 "
        "ORDER BY min(_row)"
    ).fetchall()
    if not groups:
        return None
    examples = tuple(f"{p} {s} at {_fmt_ts(t)} ×{n}" for p, s, t, n, _ in groups[:MAX_EXAMPLES])
    return DataWarning(file, None, "duplicate_stage_event", int(groups[0][4]), examples, "rows")


def _warn_stage_ties(con: duckdb.DuckDBPyConnection, file: str) -> DataWarning | None:
    """A person entering two different stages at the same instant."""
    groups = con.execute(
        "WITH s AS (SELECT DISTINCT person_id, entered_at, stage FROM stage_events "
        "WHERE person_id IS NOT NULL AND entered_at IS NOT NULL AND stage IS NOT NULL), "
        "g AS (SELECT person_id, entered_at, count(*) OVER () AS n FROM s "
        "GROUP BY person_id, entered_at HAVING count(*) > 1 "
        f"ORDER BY person_id, entered_at LIMIT {MAX_EXAMPLES}) "
        "SELECT g.person_id, g.entered_at, string_agg(s.stage, ', ' ORDER BY s.stage), "
        "any_value(g.n) FROM g JOIN s USING (person_id, entered_at) "
        "GROUP BY g.person_id, g.entered_at ORDER BY g.person_id, g.entered_at"
    ).fetchall()
    if not groups:
        return None
    examples = tuple(f"{p} at {_fmt_ts(t)}: {s}" for p, t, s, _ in groups)
    return DataWarning(
        file, "entered_at", "tied_stage_timestamp", groups[0][3], examples, "groups"
    )


def _warn_sales_touch_without_user(
    con: duckdb.DuckDBPyConnection, file: str, columns: Sequence[str]
) -> DataWarning | None:
    if "is_sales_touch" not in columns:
        return None
    no_user = "user_id IS NULL" if "user_id" in columns else "true"
    rows = con.execute(
        f"SELECT _row, touch_id, count(*) OVER () FROM touchpoints "
        f"WHERE is_sales_touch AND {no_user} ORDER BY _row LIMIT {MAX_EXAMPLES}"
    ).fetchall()
    if not rows:
        return None
    examples = tuple(f"row {r} ({t})" for r, t, _ in rows)
    return DataWarning(file, "user_id", "sales_touch_without_user", rows[0][2], examples, "rows")


def _warn_touch_before_created(con: duckdb.DuckDBPyConnection, file: str) -> DataWarning | None:
    slack = int(TOUCH_BEFORE_CREATED_SLACK.total_seconds())
    rows = con.execute(
        "SELECT t._row, t.touch_id, t.ts, p.person_id, p.created_at, count(*) OVER () "
        "FROM touchpoints t JOIN people p ON p.person_id = t.person_id "
        f"WHERE t.ts < p.created_at - INTERVAL {slack} SECOND "
        f"ORDER BY t._row LIMIT {MAX_EXAMPLES}"
    ).fetchall()
    if not rows:
        return None
    examples = tuple(
        f"row {r} ({t}): {_fmt_ts(ts)}, {p} created {_fmt_ts(c)}" for r, t, ts, p, c, _ in rows
    )
    return DataWarning(file, "ts", "touch_before_person_created", rows[0][5], examples, "rows")


def _warn_formula_text(con: duckdb.DuckDBPyConnection, item: _Loaded) -> list[DataWarning]:
    """Text cells that a spreadsheet would read as a formula, one warning per column.

    Every text column of the contract (``email_hash`` aside: it is hex) is scanned once for
    values starting with ``= + - @``, a tab or a carriage return (:data:`_FORMULA_START`,
    what :func:`neutralise_formulas` prefixes on export). Not a contract violation: the data
    are kept as they are, and every CSV export neutralises them.
    """
    types = contract_columns(item.table)
    columns = [c for c in item.columns if types.get(c) == "string" and c != "email_hash"]
    if not columns:
        return []
    starts = ", ".join(
        _lit(ch) if ch.isprintable() else f"chr({ord(ch)})" for ch in _FORMULA_START
    )
    items = []
    for column in columns:
        hit = f"left({_q(column)}, 1) IN ({starts})"
        items.append(f"count(*) FILTER (WHERE {hit})")
        items.append(
            f"min_by(struct_pack(r := _row, v := {_q(column)}), _row, {MAX_EXAMPLES}) "
            f"FILTER (WHERE {hit})"
        )
    found = con.execute(f"SELECT {', '.join(items)} FROM {_q(item.table)}").fetchone()
    warnings = []
    for i, column in enumerate(columns):
        count, examples = found[2 * i], found[2 * i + 1]
        if count:
            shown = tuple(f"row {e['r']}: {_show(e['v'])}" for e in examples)
            warnings.append(DataWarning(item.file, column, "formula_like_text", count, shown))
    return warnings


def _collect_warnings(
    con: duckdb.DuckDBPyConnection, loaded: Mapping[str, _Loaded]
) -> list[DataWarning]:
    """Every quirk: raw e-mails hashed, stage events out of order / repeated / tied, sales
    touches without a user, touches more than a day before their person was created, text
    that looks like a spreadsheet formula."""
    found: list[DataWarning | None] = []
    people = loaded.get("people")
    if people is not None and people.n_emails:
        found.append(DataWarning(people.file, "email", "raw_email_hashed", people.n_emails))

    def usable(name: str, needed: Sequence[str]) -> _Loaded | None:
        item = loaded.get(name)
        if item is None or not item.readable or item.rows == 0:
            return None
        return item if all(c in item.columns for c in needed) else None

    stages = usable("stage_events", ("person_id", "stage", "entered_at"))
    if stages is not None:
        found.append(_warn_stage_order(con, stages.file))
        found.append(_warn_stage_duplicates(con, stages.file, stages.columns))
        found.append(_warn_stage_ties(con, stages.file))
    touches = usable("touchpoints", ("touch_id", "person_id", "ts"))
    if touches is not None:
        found.append(_warn_sales_touch_without_user(con, touches.file, touches.columns))
        if usable("people", ("person_id", "created_at")) is not None:
            found.append(_warn_touch_before_created(con, touches.file))
    for table in TABLES:
        item = usable(table, ())
        if item is not None:
            found.extend(_warn_formula_text(con, item))
    return [w for w in found if w is not None]


# --------------------------------------------------------------------------------------------
# The whole folder
# --------------------------------------------------------------------------------------------


def _load(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    now: datetime | None,
    big_rows: int,
) -> _Loaded:
    """Read, type and check one table file; register it as view ``"<table>"`` in ``con``."""
    file = path.name
    if is_empty_file(path):
        errors = []
        if table in REQUIRED_TABLES:
            detail = f"the file is empty, 0 bytes; {table} is a required table"
            errors.append(DataError(file, None, (), "has_rows", detail=detail))
        con.execute(
            f"CREATE OR REPLACE VIEW {_q(table)} AS "
            f"{empty_select_sql(table, ['NULL::BIGINT AS _row'])}"
        )
        return _Loaded(table, file, 0, tuple(contract_columns(table)), "pandera", errors)
    try:
        estimate = _estimate_rows(path)
    except (pa_arrow.ArrowException, OSError, EOFError) as exc:
        if _is_csv(path):
            return _Loaded(
                table,
                file,
                0,
                (),
                "pandera",
                [DataError(file, None, (), "readable_csv", detail=str(exc)[:200])],
                readable=False,
            )
        return _Loaded(
            table, file, 0, (), "pandera", [_unreadable_parquet(path, exc)], readable=False
        )
    if estimate > big_rows:
        item = _load_with_sql(con, table, path, now)
    else:
        item = _load_with_pandera(con, table, path, now)
    if item.readable and item.rows == 0 and table in REQUIRED_TABLES:
        detail = f"header only, no data rows; {table} is a required table"
        item.errors.insert(0, DataError(file, None, (), "has_rows", detail=detail))
    log.info(
        "checked %s: %d rows with %s, %d errors", file, item.rows, item.engine, len(item.errors)
    )
    return item


Progress = Callable[[str, str], None]
"""``progress(step, state)`` of :func:`validate_folder`: state is "start" or "done"."""


@contextlib.contextmanager
def _step(progress: Progress | None, step: str) -> Iterator[None]:
    """Report ``step`` as started, then done when the block finishes without an exception."""
    if progress is not None:
        progress(step, "start")
    yield
    if progress is not None:
        progress(step, "done")


def _sorted_errors(
    errors: Iterable[DataError], table_of_file: Mapping[str, str]
) -> list[DataError]:
    order = {t: i for i, t in enumerate(TABLES)}
    by_file = {v: k for k, v in table_of_file.items()}

    def key(error: DataError) -> tuple:
        table = by_file.get(error.file, error.file if error.file in MODELS else "")
        return _sort_key(order, error, table)

    return sorted(errors, key=key)


def validate_folder(
    path: str | Path,
    *,
    now: datetime | None = None,
    big_rows: int = BIG_TABLE_ROWS,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check a folder of table files against the data contract; report every problem.

    Parameters
    ----------
    path : str or Path
        Folder holding ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet`` files
        (other files are ignored), or a DuckDB database file (``.duckdb``) holding tables
        of these names (checked with SQL; errors name ``<file>/<table>``).
    now : datetime, optional
        Reference time for ``not_in_future`` (UTC; naive taken as UTC). Default: the current
        time. A timestamp more than 1 hour after it is an error.
    big_rows : int, default BIG_TABLE_ROWS (2 000 000)
        Tables with more rows (Parquet: exact; CSV: estimated from the file size) are
        checked with SQL in DuckDB instead of pandera; the rules and messages are the same.
    progress : callable, optional
        Called as ``progress(step, state)``, state ``"start"`` then ``"done"``, around each
        table's checks (step: the file name, e.g. ``touchpoints.csv``, or
        ``<database file>/<table>``), then around the cross-table steps ``references`` and
        ``warnings``. It only observes: the report is the same with or without it.

    Returns
    -------
    ValidationReport
        ``errors`` (every broken rule), ``warnings`` (quirks), ``tables`` (one summary per
        table file), ``missing_optional``; ``report.ok`` is True when no rule is broken.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        When ``path`` is neither a folder nor a DuckDB file.

    Notes
    -----
    Rules (names as the errors show them): ``required_table``, ``one_file_per_table``,
    ``has_rows`` (a required table's file is 0 bytes or header only), ``utf8_encoding``,
    ``readable_csv``, ``readable_parquet``, ``unique_column_names``, ``row_matches_header``,
    ``required_column``, ``is_timestamp``/``is_date``/``is_number``/``is_boolean``,
    ``not_null``, ``unique``, ``allowed_values``, ``non_negative``, ``positive``,
    ``email_is_hashed``, ``not_in_future``, ``closed_at_not_before_created_at``,
    ``end_date_not_before_start_date``, ``updated_at_not_before_created_at`` and
    ``exists_in_<table>`` for every reference of the contract (:func:`references`, and
    ``assignments.unit_id`` by its ``unit_type``, :func:`typed_references`; a region unit
    breaks ``exists_in_accounts_or_users``). A reference is skipped when its parent table is
    absent, empty or unreadable. An unreadable file gets one error and no further checks.

    Warnings: ``raw_email_hashed``, ``stage_out_of_order``, ``duplicate_stage_event``,
    ``tied_stage_timestamp``, ``sales_touch_without_user``, ``touch_before_person_created``
    (more than 1 day before, :data:`TOUCH_BEFORE_CREATED_SLACK`), ``formula_like_text``
    (a text cell starting with ``= + - @``, tab or carriage return, one warning per column).

    Examples
    --------
    >>> report = validate_folder("tests/data/bad/good")  # doctest: +SKIP
    >>> report.ok, report.lines()[0]  # doctest: +SKIP
    (True, 'accounts.csv: 3 rows, 6 columns')
    """
    if Path(path).is_file() and Path(path).suffix in DATABASE_SUFFIXES:
        return _validate_database(Path(path), now, progress)
    folder = _folder(path)
    files, errors = _discover(folder)
    for table in REQUIRED_TABLES:
        if table not in files:
            detail = (
                f"no {table}.csv, {table}.csv.gz or {table}.parquet in {folder.name or folder}"
            )
            errors.append(DataError(table, None, (), "required_table", detail=detail))
    con = connect_duckdb()
    try:
        loaded = {}
        for table in (t for t in TABLES if t in files):
            with _step(progress, files[table].name):
                loaded[table] = _load(con, table, files[table], now, big_rows)
        return _finish_report(con, loaded, errors, now, progress)
    finally:
        con.close()


def _finish_report(
    con: duckdb.DuckDBPyConnection,
    loaded: Mapping[str, _Loaded],
    errors: list[DataError],
    now: datetime | None,
    progress: Progress | None = None,
) -> ValidationReport:
    """Add the per-table errors, references and warnings; order everything for the user."""
    for item in loaded.values():
        errors += item.errors
    with _step(progress, "references"):
        errors += _check_references(con, loaded, now)
    with _step(progress, "warnings"):
        warnings = _collect_warnings(con, loaded)
    tables = {
        t: TableSummary(item.file, item.rows, item.columns, item.engine)
        for t, item in loaded.items()
        if item.readable
    }
    missing = tuple(t for t in OPTIONAL_TABLES if t not in loaded)
    ordered = _sorted_errors(errors, {t: item.file for t, item in loaded.items()})
    return ValidationReport(tuple(ordered), tuple(warnings), tables, missing)


def _validate_database(
    path: Path, now: datetime | None, progress: Progress | None = None
) -> ValidationReport:
    """Check the contract tables of a DuckDB database file (all rules run as SQL).

    Errors name the table as ``<database file>/<table>``; row N is the table's N-th row in
    storage order (``rowid``), which for a database written by
    :func:`alignment.store.load_into_duckdb` is the order of the source file.
    """
    con = connect_duckdb()
    try:
        con.execute(f"ATTACH {_lit(str(path.resolve()))} AS src (READ_ONLY)")
        present = {
            name: kind
            for name, kind in con.execute(
                "SELECT table_name, table_type FROM information_schema.tables "
                "WHERE table_catalog = 'src' AND table_schema = 'main'"
            ).fetchall()
        }
        errors = [
            DataError(
                f"{path.name}/{t}",
                None,
                (),
                "required_table",
                detail=f"no table {t} in {path.name}",
            )
            for t in REQUIRED_TABLES
            if t not in present
        ]
        loaded = {}
        for table in (t for t in TABLES if t in present):
            row = "rowid + 1" if present[table] == "BASE TABLE" else "row_number() OVER ()"
            raw = _q(f"_raw_{table}")
            file = f"{path.name}/{table}"
            with _step(progress, file):
                con.execute(
                    f"CREATE VIEW {raw} AS SELECT *, {row} AS _row FROM src.main.{_q(table)}"
                )
                item = _check_raw_sql(con, table, file, raw, _describe(con, raw), now)
            if item.rows == 0 and table in REQUIRED_TABLES:
                detail = f"no rows; {table} is a required table"
                item.errors.insert(0, DataError(item.file, None, (), "has_rows", detail=detail))
            loaded[table] = item
        return _finish_report(con, loaded, errors, now, progress)
    except duckdb.Error as exc:
        first_line = (str(exc).strip().splitlines() or ["unreadable"])[0]
        error = DataError(path.name, None, (), "readable_database", detail=first_line[:200])
        return ValidationReport((error,), (), {}, ())
    finally:
        con.close()
