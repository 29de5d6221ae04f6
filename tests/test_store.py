"""alignment.store: a folder, a DuckDB file or an Ibis URL as one Store of typed tables."""

from __future__ import annotations

import hashlib
import os

import duckdb
import ibis
import pandas as pd
import pytest

from alignment import schema, store
from alignment.schema import DataError


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Frame with comparable dtypes: ibis and read_table spell nulls and units differently."""
    out = frame.reset_index(drop=True).copy()
    for name in out.columns:
        values = out[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[name] = values.dt.as_unit("us")
        elif pd.api.types.is_datetime64_dtype(values):
            out[name] = values.astype("datetime64[s]")
        elif pd.api.types.is_bool_dtype(values) or name.startswith("is_"):
            out[name] = values.astype("boolean")
        elif pd.api.types.is_float_dtype(values):
            out[name] = values.astype("float64")
        else:
            out[name] = values.astype("str")
    return out


def assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(normalised(left), normalised(right))


def test_folder_store_lists_the_tables_present(bad_corpus):
    data = store.open_data(bad_corpus / "missing_table")
    assert "opportunities" not in data.tables
    assert data.has("people") and not data.has("opportunities")
    with pytest.raises(DataError) as info:
        data.table("opportunities")
    assert info.value.rule == "table_present"


@pytest.mark.parametrize("table", schema.TABLES)
def test_folder_views_give_the_same_rows_as_pandas_reads(bad_corpus, table):
    data = store.open_data(bad_corpus / "good")
    expected = schema.read_table(bad_corpus / "good" / f"{table}.csv")
    assert_same_rows(data.table(table).to_pandas(), expected)


def test_views_have_contract_types(bad_corpus):
    touches = store.open_data(bad_corpus / "good").table("touchpoints").schema()
    assert touches["touch_id"] == ibis.dtype("string")
    assert touches["ts"] == ibis.dtype("timestamp('UTC', 6)")
    assert touches["is_sales_touch"] == ibis.dtype("boolean")
    campaigns = store.open_data(bad_corpus / "good").table("campaigns").schema()
    assert campaigns["start_date"] == ibis.dtype("date")
    assert campaigns["cost"] == ibis.dtype("float64")


def test_numeric_looking_ids_stay_strings(corpus, good_tables, tmp_path):
    good_tables["users"][1][0] = "00123"
    good_tables["touchpoints"][3][good_tables["touchpoints"][0].index("user_id")] = "00123"
    data = store.open_data(corpus.write_folder(tmp_path / "d", good_tables))
    assert data.table("users").user_id.execute().tolist()[0] == "00123"


def test_naive_timestamps_are_utc_and_offsets_converted(tmp_path):
    (tmp_path / "accounts.csv").write_text(
        "account_id,segment,region,created_at\n"
        "A1,SMB,EU,2025-01-01 10:00\n"
        "A2,SMB,EU,2025-01-01T10:00:00+02:00\n"
    )
    stamps = store.open_data(tmp_path).table("accounts").created_at.execute().tolist()
    assert stamps == [
        pd.Timestamp("2025-01-01 10:00", tz="UTC"),
        pd.Timestamp("2025-01-01 08:00", tz="UTC"),
    ]


def test_raw_email_is_hashed_in_the_view_and_never_exposed(bad_corpus):
    people = store.open_data(bad_corpus / "raw_email").table("people")
    assert "email" not in people.columns
    hashes = people.email_hash.execute().tolist()
    # Reference: hash_email, the contract's rule (SHA-256 of the trimmed, lower-cased address).
    assert hashes[0] == schema.hash_email("ann@acme.example")
    assert pd.isna(hashes[1])
    good = store.open_data(bad_corpus / "good").table("people").email_hash.execute()
    assert hashes[2:] == good.tolist()[2:]


def test_empty_optional_table_is_a_typed_view_with_no_rows(bad_corpus):
    users = store.open_data(bad_corpus / "empty_optional").table("users")
    assert users.count().execute() == 0
    assert list(users.columns) == list(schema.contract_columns("users"))


def test_parquet_and_gzip_folders_match_the_csv_folder(bad_corpus, tmp_path):
    for table in ("touchpoints", "opportunities", "people"):
        frame = schema.read_table(bad_corpus / "good" / f"{table}.csv")
        frame.to_parquet(tmp_path / f"{table}.parquet")
    for table in ("stage_events", "accounts"):
        data = (bad_corpus / "good" / f"{table}.csv").read_bytes()
        import gzip

        (tmp_path / f"{table}.csv.gz").write_bytes(gzip.compress(data))
    mixed = store.open_data(tmp_path)
    csv_store = store.open_data(bad_corpus / "good")
    for table in mixed.tables:
        assert_same_rows(mixed.table(table).to_pandas(), csv_store.table(table).to_pandas())


def test_duckdb_file_store_equals_folder_store(bad_corpus, tmp_path):
    db = store.load_into_duckdb(bad_corpus / "raw_email", tmp_path / "crm.duckdb")
    from_file = store.open_data(db)
    from_folder = store.open_data(bad_corpus / "raw_email")
    assert from_file.tables == from_folder.tables
    for table in from_folder.tables:
        assert_same_rows(from_file.table(table).to_pandas(), from_folder.table(table).to_pandas())
    assert "email" not in from_file.table("people").columns


def test_duckdb_url_opens_the_file(bad_corpus, tmp_path):
    db = store.load_into_duckdb(bad_corpus / "good", tmp_path / "crm.duckdb")
    data = store.open_data(f"duckdb://{db}")
    assert data.tables == schema.TABLES
    assert data.table("touchpoints").count().execute() == 6


def test_folder_on_another_backend_url(bad_corpus):
    data = store.open_data(bad_corpus / "good", backend_url="duckdb://")
    expected = store.open_data(bad_corpus / "good")
    for table in ("touchpoints", "opportunities"):
        assert_same_rows(data.table(table).to_pandas(), expected.table(table).to_pandas())


def test_load_refuses_a_broken_folder_and_leaves_nothing(bad_corpus, tmp_path):
    target = tmp_path / "crm.duckdb"
    store.load_into_duckdb(bad_corpus / "good", target)
    before = target.read_bytes()
    with pytest.raises(DataError) as info:
        store.load_into_duckdb(bad_corpus / "wrong_type", target)
    assert info.value.key == ("touchpoints.csv", "ts", (3,), "is_timestamp")
    assert target.read_bytes() == before  # the last good database is kept
    assert sorted(os.listdir(tmp_path)) == ["crm.duckdb"]  # no temporary file left


def test_load_failing_midway_leaves_no_file(bad_corpus, tmp_path):
    target = tmp_path / "crm.duckdb"
    with pytest.raises(duckdb.ConversionException):  # the strict cast of ts fails
        store.load_into_duckdb(bad_corpus / "wrong_type", target, validate=False)
    assert os.listdir(tmp_path) == []


def test_create_table_works_on_duckdb():
    # PITFALLS.md: sqlglot >= 30.18 makes ibis 12 emit a nameless DROP VIEW, breaking this.
    con = ibis.duckdb.connect()
    con.create_table("t", pd.DataFrame({"a": [1, 2]}))
    con.create_table("t", pd.DataFrame({"a": [3]}), overwrite=True)
    assert con.table("t").a.execute().tolist() == [3]
    con.drop_table("t")
    assert "t" not in con.list_tables()


def test_fingerprint_gives_rows_and_file_hashes(bad_corpus):
    prints = store.fingerprint(bad_corpus / "good")
    assert list(prints) == list(schema.TABLES)
    accounts = bad_corpus / "good" / "accounts.csv"
    assert prints["accounts"] == {
        "file": "accounts.csv",
        "rows": 3,
        "sha256": hashlib.sha256(accounts.read_bytes()).hexdigest(),
    }
    assert prints["stage_events"]["rows"] == 7


def test_fingerprint_counts_rows_of_broken_and_empty_files(bad_corpus):
    assert store.fingerprint(bad_corpus / "wrong_type")["touchpoints"]["rows"] == 6
    assert store.fingerprint(bad_corpus / "empty_file")["stage_events"]["rows"] == 0


def test_fingerprint_of_a_duckdb_file(bad_corpus, tmp_path):
    db = store.load_into_duckdb(bad_corpus / "good", tmp_path / "crm.duckdb")
    prints = store.fingerprint(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    assert prints["touchpoints"] == {"file": "crm.duckdb", "rows": 6, "sha256": digest}


def test_open_data_of_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        store.open_data(tmp_path / "nope")


def test_open_data_of_a_non_utf8_folder_raises_data_error(bad_corpus):
    with pytest.raises(DataError) as info:
        store.open_data(bad_corpus / "non_utf8")
    assert info.value.key == ("people.csv", None, (3,), "utf8_encoding")


def test_open_data_refuses_two_files_for_one_table(bad_corpus, tmp_path):
    for file in (bad_corpus / "good").iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    schema.read_table(tmp_path / "users.csv").to_parquet(tmp_path / "users.parquet")
    with pytest.raises(DataError, match="one_file_per_table"):
        store.open_data(tmp_path)


def test_store_execute_and_fingerprint_table(bad_corpus):
    data = store.open_data(bad_corpus / "good")
    assert data.execute(data.table("touchpoints").count()) == 6
    frame = store.fingerprint_table(bad_corpus / "good")
    assert list(frame.columns) == ["table", "file", "rows", "sha256"]
    assert frame["rows"].tolist() == [3, 4, 3, 2, 6, 7, 2, 2, 2, 3, 2]


# ------------------------------------------------------------------------------------------
# engine checks: one clear sentence when Spark cannot start (no pyspark needed to test them)


def test_spark_without_pyspark_says_to_install_the_extra(monkeypatch, pretend_pyspark) -> None:
    pretend_pyspark(False)
    hint = r"pyspark is not installed; install the spark extra: pip install '\.\[spark\]'"
    with pytest.raises(store.EngineUnavailable, match=hint):
        store.check_engine("spark")


def test_spark_with_java_home_lacking_java_says_to_set_java_home(
    monkeypatch, tmp_path, pretend_pyspark
) -> None:
    pretend_pyspark(True)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(store.EngineUnavailable, match="has no bin/java; set JAVA_HOME"):
        store.check_engine("spark")


def test_spark_without_any_java_says_to_set_java_home(
    monkeypatch, tmp_path, pretend_pyspark
) -> None:
    pretend_pyspark(True)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(store.EngineUnavailable, match="no Java found; set JAVA_HOME"):
        store.check_engine("spark")


def test_spark_engine_needs_a_folder_and_a_known_engine_name(bad_corpus, tmp_path) -> None:
    with pytest.raises(ValueError, match="engine must be one of duckdb, spark"):
        store.open_data(bad_corpus / "good", engine="oracle")
    db = store.load_into_duckdb(bad_corpus / "good", tmp_path / "crm.duckdb")
    with pytest.raises(ValueError, match="needs a data folder"):
        store.open_data(db, engine="spark")


def test_duckdb_engine_is_the_default_and_always_available(bad_corpus) -> None:
    store.check_engine("duckdb")
    assert store.open_data(bad_corpus / "good").engine == "duckdb"


def test_strip_text_trims_whitespace_and_keeps_letters() -> None:
    # Reference: Python's str.strip over the same set (space, \t, \n, \r, \v, \f)
    values = ["forward", " video\t", "\x0bfree\x0c", "a b", "\r\nx\n"]
    table = ibis.memtable(pd.DataFrame({"text": values}))
    stripped = table.select(text=store.strip_text(table.text)).to_pandas()["text"].tolist()
    assert stripped == [v.strip(" \t\n\r\x0b\x0c") for v in values]
