"""Every table-store verb against real Delta tables written by Sail and read back with deltalake."""

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import SparkSession

import resources.delta_store as delta_store
from resources.delta_store import DeltaTableStore
from resources.errors import InvalidPartitionKey, InvalidTableName

SCHEMA = "k string, v long, d date"


def rows(spark: SparkSession, *items: tuple[str, int, str]):
    return spark.createDataFrame([(k, v, date.fromisoformat(d)) for k, v, d in items], SCHEMA)


def content(store: DeltaTableStore, table: str) -> list[tuple]:
    t = DeltaTable(store.table_uri(table)).to_pyarrow_table().to_pylist()
    return sorted((r["k"], r["v"], r["d"].isoformat()) for r in t)


@pytest.fixture(params=["deltalake", "engine"], autouse=True)
def partition_writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both ways a partition write into an existing table is committed: a small one with
    ``deltalake`` on the kept handle, a larger one by the engine (forced here)."""
    if request.param == "engine":
        monkeypatch.setattr(delta_store, "ARROW_WRITE_ROWS", -1)
    return request.param


def seed(spark: SparkSession, store: DeltaTableStore) -> None:
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    data = rows(spark, ("a", 1, days[0]), ("b", 2, days[1]), ("c", 3, days[2]))
    store.replace_partitions("silver/t", data, partition_column="d", days=days)


def test_table_layout_and_names(store: DeltaTableStore) -> None:
    assert store.table_uri("silver/orders") == f"{store.root_uri}/silver/orders"
    for bad in ["orders", "silver/Orders", "silver/../x", "a/b/c", "silver/orders; x"]:
        with pytest.raises(InvalidTableName):
            store.table_uri(bad)


def test_the_definitions_take_the_root_from_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from resources.settings import Settings

    monkeypatch.setenv("MEDALLION_LAKEHOUSE_ROOT", str(tmp_path / "lh"))
    root = Settings.from_env().lakehouse_root
    assert DeltaTableStore(root=root).table_uri("gold/x") == f"{tmp_path}/lh/gold/x"


def test_replace_one_partition_leaves_the_others(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    result = store.replace_partitions(
        "silver/t",
        rows(spark, ("b2", 20, "2024-01-02"), ("b3", 21, "2024-01-02")),
        partition_column="d",
        days=["2024-01-02"],
    )
    assert result.version == 1 and result.partitions == ("2024-01-02",)
    assert content(store, "silver/t") == [
        ("a", 1, "2024-01-01"),
        ("b2", 20, "2024-01-02"),
        ("b3", 21, "2024-01-02"),
        ("c", 3, "2024-01-03"),
    ]


def test_rows_outside_the_partitions_are_not_written(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    stray = rows(spark, ("x", 9, "2024-01-02"), ("stray", 99, "2024-01-03"), ("new", 7, "2024-01-09"))
    store.replace_partitions("silver/t", stray, partition_column="d", days=["2024-01-02"])
    assert content(store, "silver/t") == [("a", 1, "2024-01-01"), ("c", 3, "2024-01-03"), ("x", 9, "2024-01-02")]


def test_replace_a_range_and_empty_days(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    store.replace_partitions(
        "silver/t", rows(spark, ("n", 5, "2024-01-03")), partition_column="d", days=["2024-01-02", "2024-01-03"]
    )
    # 01-02 had no incoming rows: it is now empty, never stale.
    assert content(store, "silver/t") == [("a", 1, "2024-01-01"), ("n", 5, "2024-01-03")]


def test_a_small_partition_write_is_committed_by_deltalake_on_the_kept_handle(
    spark: SparkSession, store: DeltaTableStore, partition_writer: str
) -> None:
    """Sail loads a table's whole snapshot for each write (0.1-0.2 s on a year-long table): a write of at most
    ``ARROW_WRITE_ROWS`` rows into an existing table is committed by ``deltalake`` instead, with the same note."""
    seed(spark, store)
    note = json.dumps({"runs": [{"run_id": "r1"}]})
    one = rows(spark, ("b2", 20, "2024-01-02"))
    result = store.replace_partitions("silver/t", one, partition_column="d", days=["2024-01-02"], note=note)
    engine = store.history("silver/t", 1)[0]["engineInfo"]
    assert engine.startswith("delta-rs" if partition_writer == "deltalake" else "sail"), engine
    assert (result.version_before, result.version) == (0, 1)
    assert store.commit_notes("silver/t", "runs", limit=1) == [(1, [{"run_id": "r1"}])]
    assert store.day_rows("silver/t", partition_column="d", days=["2024-01-02"]) == {"2024-01-02": 1}
    store.replace_partitions("silver/t", one.limit(0), partition_column="d", days=["2024-01-02"])
    assert content(store, "silver/t") == [("a", 1, "2024-01-01"), ("c", 3, "2024-01-03")]
    emptied = store.version("silver/t")
    again = store.replace_partitions("silver/t", one.limit(0), partition_column="d", days=["2024-01-02"])
    assert again.version == store.version("silver/t") == emptied  # nothing to write, nothing to remove: no commit


def test_a_column_the_table_cannot_take_is_refused_before_anything_is_committed(
    spark: SparkSession, store: DeltaTableStore
) -> None:
    """Either way a write goes: a column of no type (``NULL``) would leave a table Sail cannot read, and a decimal
    with more places than the table's column would be rounded by the engine. Each is refused, naming the table
    and the column, and the table is untouched."""
    first = spark.sql("select 'a' k, cast(1.50 as decimal(18,2)) amt, date'2024-01-01' d")
    store.replace_partitions("gold/t", first, partition_column="d", days=["2024-01-01"])
    untyped = spark.sql("select 'b' k, cast(2.50 as decimal(18,2)) amt, null as z, date'2024-01-02' d")
    with pytest.raises(TypeError, match="gold/t: column z has no type"):
        store.replace_partitions("gold/t", untyped, partition_column="d", days=["2024-01-02"])
    finer = spark.sql("select 'b' k, cast(2.555 as decimal(38,3)) amt, date'2024-01-02' d")
    with pytest.raises(TypeError, match=r"gold/t: column amt is decimal\(38,3\), the table's decimal\(18,2\)"):
        store.replace_partitions("gold/t", finer, partition_column="d", days=["2024-01-02"])
    assert store.version("gold/t") == 0 and store.columns("gold/t") == [
        ("k", "string"),
        ("amt", "decimal128(18, 2)"),
        ("d", "date32[day]"),
    ]
    assert spark.read.format("delta").load(store.table_uri("gold/t")).count() == 1


def test_a_write_takes_the_tables_types_or_is_refused(
    spark: SparkSession, store: DeltaTableStore, partition_writer: str
) -> None:
    """``deltalake`` writes rows in the table's types: a narrower integer or decimal is widened (the engine refuses
    it: Sail's gap); a value that cannot be the column's type is refused on both ways, nothing written."""
    ddl = "k string, n long, amount decimal(18,2), ts timestamp, d date"
    when = datetime(2024, 1, 1, 10, tzinfo=timezone.utc)
    first = spark.createDataFrame([("a", 1, Decimal("1.50"), when, date(2024, 1, 1))], ddl)
    store.replace_partitions("silver/typed", first, partition_column="d", days=["2024-01-01"])
    narrower = spark.createDataFrame(
        [("b", 2, Decimal("2.5"), when, date(2024, 1, 2))],
        "k string, n int, amount decimal(10,1), ts timestamp, d date",
    )
    if partition_writer == "engine":
        with pytest.raises(Exception, match="same data type"):
            store.replace_partitions("silver/typed", narrower, partition_column="d", days=["2024-01-02"])
    else:
        store.replace_partitions("silver/typed", narrower, partition_column="d", days=["2024-01-02"])
        got = {r["k"]: r for r in DeltaTable(store.table_uri("silver/typed")).to_pyarrow_table().to_pylist()}
        assert (got["b"]["n"], got["b"]["amount"], got["b"]["ts"]) == (2, Decimal("2.50"), when)
    schema = str(DeltaTable(store.table_uri("silver/typed")).schema().to_arrow())
    assert schema == str(DeltaTable(store.table_uri("silver/typed"), version=0).schema().to_arrow())
    before = DeltaTable(store.table_uri("silver/typed")).version()
    wrong = spark.createDataFrame([("c", "x", date(2024, 1, 3))], "k string, n string, d date")
    with pytest.raises(Exception) as raised:
        store.replace_partitions("silver/typed", wrong, partition_column="d", days=["2024-01-03"])
    if partition_writer == "deltalake":
        assert "silver/typed: column n cannot be written as int64" in str(raised.value)
    assert DeltaTable(store.table_uri("silver/typed")).version() == before


def test_a_table_deltalake_would_write_otherwise_is_written_by_the_engine(
    spark: SparkSession, store: DeltaTableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day column that is not a date (``deltalake`` compares no text with a date), and writer features
    ``deltalake`` lacks (deletion vectors); their rows are not collected for nothing."""
    collected: list[int] = []
    collect = DeltaTableStore._collect_small
    monkeypatch.setattr(DeltaTableStore, "_collect_small", staticmethod(lambda r: collected.append(1) or collect(r)))
    texts = spark.createDataFrame([("a", "2024-01-01"), ("b", "2024-01-02")], "k string, d string")
    store.replace_partitions("silver/text", texts, partition_column="d", days=["2024-01-01", "2024-01-02"])
    store.replace_partitions("silver/text", texts.limit(1), partition_column="d", days=["2024-01-02"])
    assert store.history("silver/text", 1)[0]["engineInfo"].startswith("sail")
    assert sorted(r["k"] for r in DeltaTable(store.table_uri("silver/text")).to_pyarrow_table().to_pylist()) == ["a"]
    seed(spark, store)
    DeltaTable(store.table_uri("silver/t")).alter.set_table_properties({"delta.enableDeletionVectors": "true"})
    store.replace_partitions(
        "silver/t", rows(spark, ("b2", 20, "2024-01-02")), partition_column="d", days=["2024-01-02"]
    )
    assert store.history("silver/t", 1)[0]["engineInfo"].startswith("sail")
    assert collected == []
    got = spark.read.format("delta").load(store.table_uri("silver/t")).collect()
    assert sorted((r.k, r.v, r.d.isoformat()) for r in got) == [
        ("a", 1, "2024-01-01"),
        ("b2", 20, "2024-01-02"),
        ("c", 3, "2024-01-03"),
    ]


def test_rerun_is_idempotent(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    before = content(store, "silver/t")
    seed(spark, store)
    assert content(store, "silver/t") == before
    assert store.version("silver/t") == 1


def test_injected_key_is_rejected_by_every_verb(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    evil = "2024-01-01' OR '1'='1"
    with pytest.raises(InvalidPartitionKey):
        store.replace_partitions("silver/t", rows(spark), partition_column="d", days=[evil])
    with pytest.raises(InvalidPartitionKey):
        store.read(spark, "silver/t", partition_column="d", days=[evil])
    assert len(content(store, "silver/t")) == 3


def test_schema_evolves_for_new_columns_and_fills_missing_ones(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    wider = spark.createDataFrame([("e", 5, "promo", date(2024, 1, 2))], "k string, v long, extra string, d date")
    result = store.replace_partitions("silver/t", wider, partition_column="d", days=["2024-01-02"])
    assert result.added_columns == ("extra",)
    narrower = spark.createDataFrame([("f", date(2024, 1, 3))], "k string, d date")
    store.replace_partitions("silver/t", narrower, partition_column="d", days=["2024-01-03"])
    table = {r["k"]: r for r in DeltaTable(store.table_uri("silver/t")).to_pyarrow_table().to_pylist()}
    assert table["e"]["extra"] == "promo" and table["a"]["extra"] is None
    assert table["f"]["v"] is None and set(table) == {"a", "e", "f"}


def test_the_schema_read_from_the_log_is_the_one_the_engine_sees(spark: SparkSession, store: DeltaTableStore) -> None:
    """Schema alignment reads the table's schema from the ``deltalake`` handle, not through the engine: the
    names and types must be the engine's own, for every type the tables hold; a narrower write is filled with
    nulls of those types."""
    ddl = "k string, n long, amount decimal(18,2), ts timestamp, flags array<string>, raw map<string,string>, d date"
    when = datetime(2024, 1, 1, 10, tzinfo=timezone.utc)
    names = [c.split()[0] for c in ddl.split(", ")]
    values = dict(zip(names, ("a", 1, Decimal("1.50"), when, ["p"], {"x": "y"}, date(2024, 1, 1)), strict=True))
    flat = ddl.replace(" flags array<string>, raw map<string,string>,", "")
    for table, columns in (("silver/typed", ddl), ("silver/typed_flat", flat)):
        kept = [c.split()[0] for c in columns.split(", ")]
        df = spark.createDataFrame([tuple(values[c] for c in kept)], columns)
        store.replace_partitions(table, df, partition_column="d", days=["2024-01-01"])
        engine = spark.read.format("delta").load(store.table_uri(table)).schema
        assert [(f.name, f.dataType) for f in store.spark_schema(table).fields] == [
            (f.name, f.dataType) for f in engine.fields
        ]
        assert [f.name for f in engine.fields] == kept
    # Sail cannot fill a missing array or map column in a replaceWhere write (its gap, whichever schema source).
    narrower = spark.createDataFrame([("b", date(2024, 1, 2))], "k string, d date")
    store.replace_partitions("silver/typed_flat", narrower, partition_column="d", days=["2024-01-02"])
    filled = DeltaTable(store.table_uri("silver/typed_flat")).to_pyarrow_table(partitions=[("d", "=", "2024-01-02")])
    assert filled.to_pylist() == [{"k": "b", "n": None, "amount": None, "ts": None, "d": date(2024, 1, 2)}]


def test_read_by_days(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    got = store.read(spark, "silver/t", partition_column="d", days=["2024-01-01", "2024-01-03"]).collect()
    assert sorted(r.k for r in got) == ["a", "c"]
    with pytest.raises(ValueError, match="partition column"):
        store.read(spark, "silver/t", days=["2024-01-01"])


def test_one_day_is_read_from_its_files_as_the_delta_reader_gives_it(spark, store, monkeypatch) -> None:
    """A one-day read takes the day's files from the kept handle (Sail would load the table's whole snapshot): the
    same rows, columns and types as the engine's Delta read, for every type the tables hold, a column older files
    lack, an empty day and a day never written. A table whose files alone are not its rows (deletion vectors) is
    read through Delta."""
    ddl = "k string, n long, amount decimal(18,2), ts timestamp, flags array<string>, raw map<string,string>, d date"
    when = datetime(2024, 1, 1, 10, tzinfo=timezone.utc)
    typed = spark.createDataFrame([("a", 1, Decimal("1.50"), when, ["p"], {"x": "y"}, date(2024, 1, 1))], ddl)
    store.replace_partitions("silver/typed", typed, partition_column="d", days=["2024-01-01", "2024-01-03"])
    seed(spark, store)
    wider = spark.createDataFrame([("e", 5, "promo", date(2024, 1, 2))], "k string, v long, extra string, d date")
    store.replace_partitions("silver/t", wider, partition_column="d", days=["2024-01-02"])
    from_files: list[str] = []
    read_day = DeltaTableStore._read_day

    def counting(self, *args):
        got = read_day(self, *args)
        if got is not None:
            from_files.append(args[3].isoformat())
        return got

    monkeypatch.setattr(DeltaTableStore, "_read_day", counting)
    odd = pa.table({"k": ["z"], "we`ird name": [1], "d": pa.array([date(2024, 1, 1)], pa.date32())})
    write_deltalake(store.table_uri("silver/odd"), odd, partition_by=["d"])  # a backtick in a column name
    cases = [("silver/typed", d) for d in ("2024-01-01", "2024-01-03", "2024-01-04")] + [("silver/odd", "2024-01-01")]
    cases += [("silver/t", d) for d in ("2024-01-01", "2024-01-02")]
    for table, day in cases:
        got = store.read(spark, table, partition_column="d", days=[day])
        want = spark.read.format("delta").load(store.table_uri(table)).filter(f"d = DATE'{day}'")
        assert [(f.name, f.dataType) for f in got.schema] == [(f.name, f.dataType) for f in want.schema]
        assert sorted(map(str, got.collect())) == sorted(map(str, want.collect())), (table, day)
    assert from_files == [day for _, day in cases]
    DeltaTable(store.table_uri("silver/t")).alter.set_table_properties({"delta.enableDeletionVectors": "true"})
    store.read(spark, "silver/t", partition_column="d", days=["2024-01-01"])
    assert len(from_files) == len(cases)


def test_merge_upserts_by_key(spark: SparkSession, store: DeltaTableStore) -> None:
    first = spark.createDataFrame([("a", 1), ("b", 2)], "k string, v long")
    store.merge("silver/dim", first, keys=["k"])
    store.merge("silver/dim", spark.createDataFrame([("b", 20), ("c", 3)], "k string, v long"), keys=["k"])
    got = sorted((r["k"], r["v"]) for r in DeltaTable(store.table_uri("silver/dim")).to_pyarrow_table().to_pylist())
    assert got == [("a", 1), ("b", 20), ("c", 3)]
    assert store.version("silver/dim") == 1
    with pytest.raises(InvalidTableName):
        store.merge("silver/dim", first, keys=["k = k OR 1"])


def test_version_and_history_come_from_deltalake(spark: SparkSession, store: DeltaTableStore) -> None:
    assert store.version("silver/t") is None and store.history("silver/t") == []
    seed(spark, store)
    seed(spark, store)
    history = store.history("silver/t")
    assert store.version("silver/t") == 1
    assert [h["version"] for h in history] == [1, 0]


def test_staged_frame_is_computed_once_and_removed(spark: SparkSession, store: DeltaTableStore) -> None:
    seed(spark, store)
    source = store.read(spark, "silver/t")
    scratch = Path(store.scratch_folder())
    with store.staged(source, name="t") as staged:
        [path] = [p for p in scratch.iterdir() if p.name != ".owner"]
        store.replace_partitions("silver/t", rows(spark), partition_column="d", days=["2024-01-01"])
        # the source changed underneath; the staged rows are what was computed when staging
        assert sorted(r["k"] for r in source.collect()) == ["b", "c"]
        assert sorted(r["k"] for r in staged.collect()) == ["a", "b", "c"]
        assert staged.schema == source.schema
    assert not path.exists()
    with pytest.raises(RuntimeError, match="boom"), store.staged(source, name="t"):
        raise RuntimeError("boom")
    assert [p.name for p in scratch.iterdir()] == [".owner"]
    with pytest.raises(InvalidTableName):
        store.staged(source, name="../x").__enter__()


def test_staged_scratch_is_written_for_speed_not_size(spark: SparkSession, store: DeltaTableStore) -> None:
    """Scratch is read back once or twice and then removed: snappy, no dictionary (the engine's defaults, zstd and
    dictionaries, cost a wide range's silver 1-2 s; BENCHMARKS item 31)."""
    import pyarrow.parquet as pq

    seed(spark, store)
    scratch = Path(store.scratch_folder())
    with store.staged(store.read(spark, "silver/t"), name="t"):
        [file, *_] = sorted(scratch.glob("t-*/*.parquet"))
        column = pq.ParquetFile(file).metadata.row_group(0).column(0)
        assert column.compression == "SNAPPY"
        assert "RLE_DICTIONARY" not in column.encodings and "PLAIN_DICTIONARY" not in column.encodings


def test_scratch_of_a_dead_process_is_removed_and_live_scratch_kept(store: DeltaTableStore) -> None:
    import subprocess
    import sys
    import textwrap

    mine = Path(store.scratch_folder())
    child = textwrap.dedent(
        f"""
        from resources.delta_store import DeltaTableStore
        print(DeltaTableStore(root={store.root_uri!r}).scratch_folder(), flush=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    dead = Path(proc.stdout.strip())  # its process has exited: the owner lock is free
    assert dead.exists() and dead != mine
    assert store.remove_dead_scratch() == [dead.name]
    assert not dead.exists() and mine.exists()


def test_a_table_as_a_delta_table_resource_pinned_to_a_version(spark: SparkSession, store: DeltaTableStore) -> None:
    from dagster_deltalake import DeltaTableResource

    seed(spark, store)
    published = content(store, "silver/t")
    store.replace_partitions(
        "silver/t", rows(spark, ("b2", 20, "2024-01-02")), partition_column="d", days=["2024-01-02"]
    )
    pinned = store.table_resource("silver/t", version=0)
    assert isinstance(pinned, DeltaTableResource) and pinned.url == store.table_uri("silver/t")
    got = pinned.load().to_pyarrow_table().to_pylist()
    assert sorted((r["k"], r["v"], r["d"].isoformat()) for r in got) == published
    assert store.table_resource("silver/t").load().version() == 1


def checkpoint_version(store: DeltaTableStore, table: str) -> int | None:
    marker = Path(store.table_uri(table)) / "_delta_log" / "_last_checkpoint"
    return json.loads(marker.read_text())["version"] if marker.exists() else None


def test_a_commit_log_is_checkpointed_as_it_grows(spark: SparkSession, store: DeltaTableStore, monkeypatch) -> None:
    """Sail writes no checkpoints: without them every open of a table replays every commit since the last
    maintenance, so a day's run costs more the longer the table has lived."""

    monkeypatch.setattr(delta_store, "COMPACT_AFTER_FILES", 1000)  # a compaction is a commit too: counted apart
    for n in range(delta_store.CHECKPOINT_AFTER_COMMITS - 1):
        store.append_rows("monitoring/notes", [{"n": n}])
    assert checkpoint_version(store, "monitoring/notes") is None
    store.append_rows("monitoring/notes", [{"n": 99}])
    assert checkpoint_version(store, "monitoring/notes") == store.version("monitoring/notes")

    # a large commit (a range run writing a year of days) is checkpointed at once, and reads the same after
    monkeypatch.setattr(delta_store, "CHECKPOINT_AFTER_BYTES", 1)
    seed(spark, store)
    assert checkpoint_version(store, "silver/t") == 0
    assert content(store, "silver/t") == [("a", 1, "2024-01-01"), ("b", 2, "2024-01-02"), ("c", 3, "2024-01-03")]
    assert sorted(r.k for r in store.read(spark, "silver/t").collect()) == ["a", "b", "c"]


def test_an_appended_bookkeeping_table_stays_a_few_files(store: DeltaTableStore) -> None:
    """The run log gets a file per step; reading it opened every one of them, so each run read more than the last."""

    for n in range(3 * delta_store.COMPACT_AFTER_FILES):
        store.append_rows("monitoring/notes", [{"n": n}])
    table = store.delta_table("monitoring/notes")
    assert len(table.file_uris()) <= delta_store.COMPACT_AFTER_FILES
    assert sorted(table.to_pyarrow_table().column("n").to_pylist()) == list(range(3 * delta_store.COMPACT_AFTER_FILES))


def test_a_failed_checkpoint_never_fails_the_write(store: DeltaTableStore, monkeypatch, caplog) -> None:

    def refuse(self) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(delta_store, "CHECKPOINT_AFTER_BYTES", 1)
    monkeypatch.setattr(DeltaTable, "create_checkpoint", refuse)
    result = store.append_rows("monitoring/notes", [{"n": 1}])
    assert result.version == 0 and checkpoint_version(store, "monitoring/notes") is None
    assert "monitoring/notes" in caplog.text and "disk full" in caplog.text


def test_a_table_handle_is_kept_and_follows_every_writer(spark: SparkSession, store: DeltaTableStore, monkeypatch):
    """A day's run opens its tables some 40 times; loading a year-long snapshot each time cost 0.4 s a run."""

    seed(spark, store)  # loads the handle once
    loads: list[str] = []

    class Counting(DeltaTable):
        def __init__(self, uri: str, *args, **kwargs) -> None:
            loads.append(uri)
            super().__init__(uri, *args, **kwargs)

    monkeypatch.setattr(delta_store, "DeltaTable", Counting)
    first = store.version("silver/t")
    # another writer (Sail here; another process alike) commits: the kept handle sees it without a reload
    store.replace_partitions("silver/t", rows(spark, ("z", 9, "2024-01-02")), partition_column="d", days=["2024-01-02"])
    other = DeltaTableStore(root=store.root)
    assert other.version("silver/t") == store.version("silver/t") == first + 1
    assert store.day_rows("silver/t", partition_column="d", days=["2024-01-02"]) == {"2024-01-02": 1}
    assert store.delta_table("silver/t").history(1)[0]["version"] == first + 1
    assert loads == []


def test_a_kept_handle_is_updated_only_when_a_commit_follows_it(
    spark: SparkSession, store: DeltaTableStore, monkeypatch
):
    """Bringing a year-long handle up to date lists its log (0.6-0.7 ms, some 80 times a day's run): it is done only
    when the next commit's file exists."""
    seed(spark, store)
    updates: list[int] = []
    update = DeltaTable.update_incremental
    monkeypatch.setattr(DeltaTable, "update_incremental", lambda self: updates.append(1) or update(self))
    first = store.version("silver/t")
    for _ in range(3):
        assert store.delta_table("silver/t").version() == first
    assert updates == []
    write_deltalake(store.table_uri("silver/t"), rows(spark, ("y", 8, "2024-01-03")).toArrow(), mode="append")
    assert store.delta_table("silver/t").version() == first + 1 and updates == [1]


def test_a_table_removed_and_created_again_is_read_afresh(spark: SparkSession, store: DeltaTableStore) -> None:
    import shutil

    for n in range(3):
        store.append_rows("monitoring/notes", [{"n": n}])
    assert store.version("monitoring/notes") == 2
    shutil.rmtree(store.table_uri("monitoring/notes"))
    store.append_rows("monitoring/notes", [{"n": 7}, {"n": 8}])
    table = store.delta_table("monitoring/notes")
    assert table.version() == 0
    assert sorted(table.to_pyarrow_table().column("n").to_pylist()) == [7, 8]
    # the same version number over a different commit: still read afresh
    shutil.rmtree(store.table_uri("monitoring/notes"))
    store.append_rows("monitoring/notes", [{"n": 5}])
    assert store.delta_table("monitoring/notes").to_pyarrow_table().column("n").to_pylist() == [5]


def test_a_mark_holds_a_version_of_the_table_it_was_set_on(store: DeltaTableStore) -> None:
    """A reader's place in a table's commits, kept for the next process; gone with the commit it names."""
    import shutil

    assert store.marked_version("monitoring/notes", "read") is None
    for n in range(3):
        store.append_rows("monitoring/notes", [{"n": n}])
    store.set_mark("monitoring/notes", "read", 1)
    assert DeltaTableStore(root=store.root).marked_version("monitoring/notes", "read") == 1
    assert store.marked_version("monitoring/notes", "other") is None
    # removed and created again: version 1 is another commit now
    shutil.rmtree(store.table_uri("monitoring/notes"))
    for n in range(3):
        store.append_rows("monitoring/notes", [{"n": n}])
    assert store.marked_version("monitoring/notes", "read") is None
    store.set_mark("monitoring/notes", "read", 2)
    [kept] = (Path(store.root) / "_marks" / "read").iterdir()
    kept.write_text('{"version": 2, "sta')  # torn
    assert store.marked_version("monitoring/notes", "read") is None
    with pytest.raises(InvalidTableName):
        store.set_mark("../notes", "read", 1)


def test_arrow_reads_go_through_the_native_filesystem(
    spark: SparkSession, store: DeltaTableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``deltalake`` reads Arrow through Python file objects unless given a filesystem; Arrow may release their
    read-ahead on its own threads after the read, and at exit that aborted ``medallion`` (exit code 134). Every
    Arrow read of the store, the run log and the summary passes pyarrow's native filesystem instead."""
    import deltalake.fs

    from medallion_assets import run_log
    from medallion_assets.summary import table_rows

    seed(spark, store)
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    row = run_log.RunLogRow(
        run_id="r1", run_mode="manual", asset="silver/t", layer="silver", partition="2024-01-01", started_at=when,
        ended_at=when, duration_secs=0.0, rows_in=1, rows_written=1, quarantined=0, superseded=0, pass_rate=1.0,
        threshold=0.95, passed=True, delta_version=0, engine="sail", error_message=None,
    )  # fmt: skip
    run_log.record(store, [row])

    def python_files(*args, **kwargs):
        raise AssertionError("read through Python file objects")

    monkeypatch.setattr(deltalake.fs.DeltaStorageHandler, "from_table", python_files)
    assert store.day_counts("silver/t", partition_column="d", days=["2024-01-02"], column="k") == {
        "2024-01-02": {"b": 1}
    }
    assert table_rows(store, "silver/t") == 3
    assert run_log.latest_attempts(store, "silver/t", ["2024-01-01"])["2024-01-01"]["passed"] is True
    assert run_log.days_of_last_write(store, "silver/t") == {"2024-01-01"}
    assert run_log.refused_in_run(store, "r1") == []
