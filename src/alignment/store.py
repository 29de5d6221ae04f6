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
- ``engine="spark"`` reads a **folder** with Spark instead (Ibis's PySpark backend, the
  ``spark`` extra): one temporary view per file, typed as the contract says, timestamps in
  UTC. The session is a local one (:func:`spark_session`), or a remote Spark Connect server
  when ``SPARK_REMOTE`` is set (``sc://host:15002``; the folder must then be readable by
  the cluster), or any ``SparkSession`` passed as ``spark=``. Heavy row-level expressions
  then run on Spark; only their small aggregated results come back to pandas.

The views cast strictly: a value that breaks its type fails the query that reads it. Check a
folder first with :func:`alignment.schema.validate_folder` (``alignment validate DATA``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
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

ENGINES: tuple[str, ...] = ("duckdb", "spark")
"""Engines that read a data folder: embedded DuckDB (the default) or Spark (local or remote)."""
SPARK_EXTRA_HINT = "install the spark extra: pip install '.[spark]'"
JAVA_HINT = "set JAVA_HOME to a Java 17 installation (or put `java` on PATH)"
TS_UTC = "timestamp('UTC', 6)"


_EDGE_SPACE = r"^[ \t\n\r\x0B\f]+|[ \t\n\r\x0B\f]+$"
"""Leading or trailing whitespace, as a regular expression both RE2 (DuckDB) and Java
(Spark) read the same way."""


class EngineUnavailable(RuntimeError):
    """The chosen engine cannot start here; the message says what to install or set."""


def strip_text(value: ir.StringValue) -> ir.StringValue:
    """``value`` without leading and trailing whitespace (space, tab, CR, LF, VT, FF), the same
    on every backend.

    Use it instead of Ibis's ``strip()`` in study expressions: on Spark, ibis 12.0.0 emits
    ``TRIM(' \\t\\n\\r\\v\\f' FROM x)`` and Spark reads ``\\v`` and ``\\f`` as the
    letters ``v`` and ``f``, so ``strip()`` turns ``"forward"`` into ``"orward"`` and
    ``"video"`` into ``"ideo"`` there (PITFALLS.md). Null stays null.

    Examples
    --------
    >>> t = ibis.memtable({"a": [" forward\t", "video", None]})
    >>> t.select(a=strip_text(t.a)).a.to_list()
    ['forward', 'video', None]
    """
    return value.re_replace(_EDGE_SPACE, "")


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
        table = self.con.table(name)
        if self.con.name == "pyspark":
            table = _timestamps_as_utc(table)
        return table

    @property
    def engine(self) -> str:
        """Name of the Ibis backend that runs the queries (``duckdb``, ``pyspark``, ...)."""
        return str(self.con.name)

    def execute(self, expr: ir.Expr, **kwargs: Any) -> Any:
        """Run ``expr`` on this store's connection: a pandas DataFrame, Series or scalar."""
        return self.con.execute(expr, **kwargs)


def open_data(
    source: str | Path,
    *,
    backend_url: str | None = None,
    engine: str = "duckdb",
    spark: Any | None = None,
) -> Store:
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
        the backend yourself and pass its URL as ``source``, or use ``engine="spark"``).
    engine : {"duckdb", "spark"}, default "duckdb"
        Only with a folder: ``spark`` reads its files with Spark (nothing materialised; the
        contract's types applied as Spark casts, strict like DuckDB's) and runs every query
        there; see :func:`spark_session` for the session used.
    spark : pyspark.sql.SparkSession, optional
        With ``engine="spark"``: the session to use (local, cluster or Spark Connect);
        default :func:`spark_session`.

    Returns
    -------
    Store

    Raises
    ------
    FileNotFoundError
        When ``source`` is neither an existing path nor a URL.
    DataError
        When a folder holds two files for one table (``one_file_per_table``).
    EngineUnavailable
        ``engine="spark"`` without pyspark installed or without Java (:func:`check_engine`).
    ValueError
        An unknown ``engine``, or ``engine="spark"`` with a source that is not a folder.

    Examples
    --------
    >>> store = open_data("tests/data/bad/good")  # doctest: +SKIP
    >>> store.table("touchpoints").count().execute()  # doctest: +SKIP
    6
    """
    text = str(source)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine == "spark":
        if backend_url is not None or not Path(source).is_dir():
            raise ValueError(f"engine='spark' needs a data folder as source; got {text!r}")
        if spark is None:
            check_engine("spark")
            spark = spark_session()
        return _open_folder_on_spark(Path(source), spark)
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


# --------------------------------------------------------------------------------------------
# Spark


def check_engine(engine: str) -> None:
    """Raise :class:`EngineUnavailable` when ``engine`` cannot run on this machine.

    DuckDB always can. Spark needs the ``pyspark`` package (the ``spark`` extra) and, for a
    local session, Java: ``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set, else ``java`` on
    ``PATH`` (what pyspark's launcher runs). With ``SPARK_REMOTE`` set (Spark Connect) no
    local Java is needed.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine == "duckdb":
        return
    if importlib.util.find_spec("pyspark") is None:
        raise EngineUnavailable(f"engine spark: pyspark is not installed; {SPARK_EXTRA_HINT}")
    if os.environ.get("SPARK_REMOTE"):
        return
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not (java.is_file() and os.access(java, os.X_OK)):
            raise EngineUnavailable(
                f"engine spark: JAVA_HOME={java_home} has no bin/java; {JAVA_HINT}"
            )
    elif shutil.which("java") is None:
        raise EngineUnavailable(f"engine spark: no Java found; {JAVA_HINT}")


_SPARK_SESSION: Any = None


def spark_session(
    *, master: str = "local[*]", driver_memory: str = "2g", conf: dict[str, str] | None = None
) -> Any:
    """The process's Spark session for the studies, created on first use and then reused.

    Parameters
    ----------
    master : str, default "local[*]"
        Spark master of a new local session (ignored when ``SPARK_REMOTE`` is set: pyspark
        then connects to that Spark Connect server instead).
    driver_memory : str, default "2g"
        JVM heap of a new local session (``spark.driver.memory``; only effective before the
        JVM starts, i.e. for the first session of the process).
    conf : dict, optional
        More Spark settings for a new session.

    Returns
    -------
    pyspark.sql.SparkSession

    Notes
    -----
    A new local session gets ``spark.sql.warehouse.dir`` in a fresh temporary folder (a
    leftover ``spark-warehouse/`` makes ``create_table`` fail, PITFALLS.md), session time
    zone UTC, no web UI, few shuffle partitions (adaptive execution coalesces them further)
    and a log4j2 configuration that prints errors only (:data:`SPARK_LOG4J2`), so a notebook or
    the CLI does not fill stderr with Spark's start-up banner and warnings. The JVM's own
    "Using incubator modules" line on Java 17 cannot be silenced from here.
    """
    global _SPARK_SESSION
    if _SPARK_SESSION is not None and not _session_stopped(_SPARK_SESSION):
        return _SPARK_SESSION
    check_engine("spark")
    from pyspark.sql import SparkSession

    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(max(4, 2 * (os.cpu_count() or 1))),
        "spark.sql.adaptive.enabled": "true",
        "spark.driver.memory": driver_memory,
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={_log4j2_file().as_uri()}",
        "spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="alignment-spark-warehouse-"),
        **(conf or {}),
    }
    builder = SparkSession.builder.appName("alignment")
    if not os.environ.get("SPARK_REMOTE"):
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    log.info("Spark %s session %s", session.version, os.environ.get("SPARK_REMOTE") or master)
    _SPARK_SESSION = session
    return session


SPARK_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark %p %c{1}: %m%n%ex
logger.repl.name = org.apache.spark.api.python.PythonGatewayServer
logger.repl.level = error
"""
"""Log4j2 settings of a new local session: errors only, one line each, to stderr. The
``repl.Main`` logger at the root's level stops pyspark's "Setting default log level" notice."""


def _log4j2_file() -> Path:
    """:data:`SPARK_LOG4J2` written to a fresh temporary file (the JVM reads it by URI)."""
    handle, name = tempfile.mkstemp(prefix="alignment-spark-log4j2-", suffix=".properties")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(SPARK_LOG4J2)
    return Path(name)


def _session_stopped(session: Any) -> bool:
    context = getattr(session, "_sc", None)  # absent on Spark Connect sessions
    return context is not None and getattr(context, "_jsc", None) is None


def _open_folder_on_spark(folder: Path, session: Any) -> Store:
    """One temporary view per table file, in the contract's types (see :func:`_spark_frame`)."""
    files = schema.find_table_files(folder)
    con = ibis.pyspark.connect(session)
    for table, path in files.items():
        _spark_frame(session, table, path).createOrReplaceTempView(table)
    log.info("opened %s on Spark: %s", folder, ", ".join(files))
    return Store(con, tuple(files), f"{folder} (Spark)")


def _spark_frame(session: Any, table: str, path: Path) -> Any:
    """A Spark DataFrame of one table file in the contract types, e-mails hashed.

    Mirrors :func:`alignment.schema.table_view_sql`: CSV is read with every column as text
    (header from the file, empty cells null) and cast per the contract; Parquet keeps its
    types where they already match. Casts are strict under Spark's ANSI mode (the default in
    Spark 4): a value that breaks its type fails the query that reads it, as in DuckDB.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kinds = schema.contract_columns(table)
    if schema.is_empty_file(path):
        fields = [T.StructField(name, _spark_type(kind)(), True) for name, kind in kinds.items()]
        return session.createDataFrame([], T.StructType(fields))
    if path.name.endswith((".csv", ".csv.gz")):
        frame = session.read.csv(
            str(path.resolve()), header=True, inferSchema=False, quote='"', escape='"',
            multiLine=True, nullValue="", emptyValue="",
        )  # fmt: skip
    else:
        frame = session.read.parquet(str(path.resolve()))
    source_types = {field.name: field.dataType for field in frame.schema.fields}
    columns = []
    for name, dtype in source_types.items():
        if name == "email":
            if "email_hash" in source_types:
                continue
            columns.append(_spark_email_hash(F.col("`email`"), None).alias("email_hash"))
        elif name == "email_hash" and "email" in source_types:
            own = _spark_typed(F.col("`email_hash`"), "string", dtype)
            columns.append(_spark_email_hash(F.col("`email`"), own).alias("email_hash"))
        elif name in kinds:
            columns.append(_spark_typed(F.col(f"`{name}`"), kinds[name], dtype).alias(name))
        else:
            columns.append(F.col(f"`{name}`"))
    return frame.select(*columns)


def _spark_type(kind: str) -> Any:
    from pyspark.sql import types as T

    return {
        "string": T.StringType,
        "timestamp": T.TimestampType,
        "date": T.DateType,
        "float": T.DoubleType,
        "boolean": T.BooleanType,
    }[kind]


def _spark_typed(col: Any, kind: str, source: Any) -> Any:
    """One column in its contract type (Spark ``Column``), as ``schema._typed_expr`` does."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    text = isinstance(source, T.StringType)
    floating = isinstance(source, (T.FloatType, T.DoubleType))
    numeric = isinstance(source, T.NumericType)
    blank = F.nullif(F.btrim(col, F.lit(schema._WHITESPACE)), F.lit("")) if text else col
    if kind == "string":
        if text:
            return col
        if floating:  # 123.0 -> "123", as DuckDB's view writes it
            whole = col == F.floor(col)
            return F.when(whole, col.cast("bigint").cast("string")).otherwise(col.cast("string"))
        return col.cast("string")
    if kind == "timestamp":
        return blank.cast("timestamp")
    if kind == "date":
        return blank.cast("timestamp").cast("date") if text else col.cast("date")
    if kind == "float":
        return blank.cast("double")
    if kind == "boolean":
        if isinstance(source, T.BooleanType):
            return col
        if text:
            lowered = F.lower(blank)
            return (
                F.when(lowered.isin("true", "1", "yes"), F.lit(True))
                .when(lowered.isin("false", "0", "no"), F.lit(False))
                .otherwise(blank.cast("boolean"))
            )
        if numeric:
            return (
                F.when(col == 1, F.lit(True))
                .when(col == 0, F.lit(False))
                .otherwise(col.cast("boolean"))
            )
        return col.cast("boolean")
    raise ValueError(f"unknown column type {kind!r}")


def _spark_email_hash(email: Any, own: Any | None) -> Any:
    """SHA-256 hex of the trimmed, lower-cased address (the file's own hash wins)."""
    from pyspark.sql import functions as F

    trimmed = F.nullif(F.lower(F.btrim(email, F.lit(schema._WHITESPACE))), F.lit(""))
    hashed = F.sha2(trimmed, 256)
    return F.coalesce(own, hashed) if own is not None else hashed


def _timestamps_as_utc(table: ir.Table) -> ir.Table:
    """Spark's TIMESTAMP is an instant shown in the session time zone (UTC here), but Ibis
    types it as a naive timestamp; retype such columns as UTC so expressions and pandas
    results match DuckDB's ``TIMESTAMPTZ`` (the cast compiles to a no-op on Spark)."""
    naive = {
        name: TS_UTC
        for name, dtype in table.schema().items()
        if dtype.is_timestamp() and dtype.timezone is None
    }
    return table.cast(naive) if naive else table


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
