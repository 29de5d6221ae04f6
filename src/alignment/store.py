"""Open a data folder, a DuckDB file or any Ibis backend as one :class:`Store` of tables.

Study modules take ``ibis.Table`` expressions; this module is the one place that connects.

- A **folder** of ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet`` files becomes an
  in-memory DuckDB connection holding one **view** per file: nothing is copied, each query
  reads the files. Columns have the contract's types (``docs/data_contract.md``): CSV is
  read as text and cast explicitly, so an id that looks numeric stays a string; timestamps
  are ``TIMESTAMPTZ`` in UTC (a value without an offset is taken as UTC). A raw ``email``
  column of ``people`` is hashed into ``email_hash`` inside the view and never exposed.
- A **.duckdb file** (see :func:`load_into_duckdb`) is opened read-only.
- Any other **Ibis URL** (``duckdb://``, ``pyspark://``, ``bigquery://``...) goes to
  ``ibis.connect``.

The views cast strictly: a value that breaks its type fails the query that reads it. Check a
folder first with :func:`alignment.schema.validate_folder` (``alignment validate DATA``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

from alignment import schema

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class Store:
    """The tables of one data source, behind one Ibis connection.

    Attributes
    ----------
    con : ibis.backends.BaseBackend
        The connection; study code should not need it beyond :meth:`table`.
    tables : tuple of str
        Contract tables present in the source, in contract order (an optional table may be
        absent; a present one may have 0 rows).
    source : str
        Where the data came from (folder, file or URL), for messages and the manifest.
    """

    con: BaseBackend
    tables: tuple[str, ...]
    source: str

    def has(self, name: str) -> bool:
        """True when table ``name`` is present (it may still have 0 rows)."""
        return name in self.tables

    def table(self, name: str) -> ir.Table:
        """Table ``name`` as an Ibis expression.

        Raises
        ------
        DataError
            Rule ``table_present`` when the source has no such table; a study that can do
            without it checks :meth:`has` first and says so in its report section.
        """
        if not self.has(name):
            detail = f"no {name} table in {self.source}"
            raise schema.DataError(name, None, (), "table_present", detail=detail)
        return self.con.table(name)

    def execute(self, expr: ir.Expr, **kwargs: Any) -> Any:
        """Run ``expr`` on this store's connection: a pandas DataFrame, Series or scalar."""
        return self.con.execute(expr, **kwargs)


def open_data(source: str | Path, *, backend_url: str | None = None) -> Store:
    """Open a folder, a ``.duckdb`` file or an Ibis URL as a :class:`Store`.

    Parameters
    ----------
    source : str or Path
        A folder of table files (CSV, CSV.GZ or Parquet; other files ignored), a DuckDB
        database file (opened read-only), or an Ibis URL such as ``duckdb://crm.duckdb`` or
        ``bigquery://project/dataset`` (passed to ``ibis.connect``).
    backend_url : str, optional
        Only with a folder: run on this Ibis backend instead of embedded DuckDB. Each table
        is read and typed by DuckDB, then created on the backend with ``create_table``
        (materialised; fine for small and medium data; for big data load the tables into
        the backend yourself and pass its URL as ``source``).

    Returns
    -------
    Store

    Raises
    ------
    FileNotFoundError
        When ``source`` is neither an existing path nor a URL.
    DataError
        When a folder holds two files for one table (``one_file_per_table``).

    Examples
    --------
    >>> store = open_data("tests/data/bad/good")  # doctest: +SKIP
    >>> store.table("touchpoints").count().execute()  # doctest: +SKIP
    6
    """
    text = str(source)
    if backend_url is not None:
        if not Path(source).is_dir():
            raise ValueError(f"backend_url needs a folder as source; got {text!r}")
        return _open_folder_on_backend(Path(source), backend_url)
    if "://" in text:
        con = ibis.connect(text)
        return Store(con, _present(con.list_tables()), text)
    path = Path(source)
    if path.is_dir():
        return _open_folder(path)
    if path.is_file():
        return _open_duckdb_file(path)
    raise FileNotFoundError(2, "No such file or directory", text)


def _present(names: list[str]) -> tuple[str, ...]:
    found = set(names)
    return tuple(t for t in schema.TABLES if t in found)


def _open_folder(folder: Path) -> Store:
    files = schema.find_table_files(folder)
    con = ibis.duckdb.connect()
    raw = con.con  # the DuckDB connection behind ibis
    raw.execute("SET TimeZone = 'UTC'")
    schema.disable_progress_bar(raw)
    for table, path in files.items():
        select = schema.table_view_sql(raw, table, path)
        raw.execute(f'CREATE VIEW "{table}" AS {select}')
    log.info("opened %s: %s", folder, ", ".join(files))
    return Store(con, tuple(files), str(folder))


def _open_duckdb_file(path: Path) -> Store:
    con = ibis.duckdb.connect(database=str(path), read_only=True)
    con.con.execute("SET TimeZone = 'UTC'")
    schema.disable_progress_bar(con.con)
    return Store(con, _present(con.list_tables()), str(path))


def _open_folder_on_backend(folder: Path, url: str) -> Store:
    local = _open_folder(folder)
    con = ibis.connect(url)
    for name in local.tables:
        con.create_table(name, local.table(name).to_pyarrow(), overwrite=True)
    return Store(con, local.tables, f"{folder} on {url}")


def load_into_duckdb(folder: str | Path, db_path: str | Path, *, validate: bool = True) -> Path:
    """Load a folder of table files once into a DuckDB file, typed, e-mails hashed.

    Repeated studies then read the database instead of re-parsing CSV.

    Parameters
    ----------
    folder : str or Path
        Folder of table files, as for :func:`open_data`.
    db_path : str or Path
        Database file to write; replaced atomically (the new database is written to a
        temporary file in the same folder, then renamed), so a failure never leaves a
        half-written database behind and readers never see one.
    validate : bool, default True
        Check the folder first (:func:`alignment.schema.validate_folder`) and raise its
        first error instead of loading broken data.

    Returns
    -------
    Path
        ``db_path``.

    Raises
    ------
    DataError
        When ``validate`` and the folder breaks the contract, or when a value cannot be
        cast to its contract type.
    """
    folder, db_path = Path(folder), Path(db_path)
    if validate:
        schema.validate_folder(folder).raise_for_errors()
    files = schema.find_table_files(folder)
    tmp = db_path.with_name(f".{db_path.name}.{uuid.uuid4().hex}.tmp")
    con = schema.connect_duckdb()
    try:
        con.execute(f"ATTACH '{_sql_path(tmp)}' AS out")
        for table, path in files.items():
            select = schema.table_view_sql(con, table, path)
            con.execute(f'CREATE TABLE out."{table}" AS {select}')
        con.execute("DETACH out")
        con.close()
        os.replace(tmp, db_path)
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
        raise
    log.info("loaded %s into %s: %s", folder, db_path, ", ".join(files))
    return db_path


def _sql_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(source: str | Path) -> dict[str, dict[str, Any]]:
    """Rows and content hash of each input table, for the report manifest.

    Parameters
    ----------
    source : str or Path
        A folder of table files, a ``.duckdb`` file or an Ibis URL, as for :func:`open_data`.

    Returns
    -------
    dict
        ``{table: {"file": str, "rows": int, "sha256": str | None}}`` in contract order.
        Folder: ``sha256`` of each file's bytes (a CSV.GZ: of the compressed bytes), rows
        as in the file (values are not parsed, so a broken value does not stop it).
        DuckDB file: ``sha256`` of the whole database file (the same for every table).
        Other backends: ``sha256`` is None.
    """
    path = Path(source)
    if "://" not in str(source) and path.is_dir():
        return {
            table: {"file": file.name, "rows": _count_rows(file), "sha256": _sha256_file(file)}
            for table, file in schema.find_table_files(path).items()
        }
    store = open_data(source)
    digest = _sha256_file(path) if "://" not in str(source) and path.is_file() else None
    return {
        table: {
            "file": path.name if digest else table,
            "rows": int(store.table(table).count().execute()),
            "sha256": digest,
        }
        for table in store.tables
    }


def fingerprint_table(source: str | Path) -> pd.DataFrame:
    """:func:`fingerprint` as a frame: one row per table with ``file``, ``rows``, ``sha256``."""
    prints = fingerprint(source)
    records = [{"table": table, **values} for table, values in prints.items()]
    return pd.DataFrame.from_records(records, columns=["table", "file", "rows", "sha256"])


def _count_rows(path: Path) -> int:
    """Data rows of one table file (Parquet: from its metadata; CSV: parsed by DuckDB)."""
    if schema.is_empty_file(path):
        return 0
    con = schema.connect_duckdb()
    try:
        return int(con.execute(f"SELECT count(*) FROM {schema.source_sql(path)}").fetchone()[0])
    finally:
        con.close()
