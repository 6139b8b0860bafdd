"""Tables for plugin authors, with pyarrow: read a dataset's tables (the CroPS
log format v1, docs/dataset-format.md) and write an output table (candidates,
labels, results, scores) atomically after checking it against the format.
The Python mirror of the Go SDK's sdk/table; the schemas are core/dataset's."""

from __future__ import annotations

import os
import tempfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Table names inside a dataset directory.
ITEMS = "items"
SEARCH = "search"
FEED = "feed"
SPLIT = "split"
QRELS = "qrels"
REQUESTS = "requests"

# Values of search.stage and split.split.
STAGE_EXPOSED = "exposed"
STAGE_RANKED_UNEXPOSED = "ranked_unexposed"
STAGE_PREFILTERED = "prerank_filtered"
SPLIT_TRAIN = "train"
SPLIT_TEST = "test"

#: A positive source's output: one row per (query, item, source).
CANDIDATES = pa.schema([
    pa.field("query", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("tier_hint", pa.int32(), nullable=False),
    pa.field("confidence", pa.float64(), nullable=False),
    pa.field("evidence", pa.string()),  # a JSON object
])
#: A labeler's output: one row per (query, item).
LABELS = pa.schema([
    pa.field("query", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("tier", pa.int32(), nullable=False),
    pa.field("sources", pa.string(), nullable=False),
])
#: A retriever's Search output (rank is 1-based).
RESULTS = pa.schema([
    pa.field("query", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("rank", pa.int32(), nullable=False),
    pa.field("score", pa.float64(), nullable=False),
])
#: A retriever's Score output, same rows in the same order as its input.
SCORES = pa.schema([
    pa.field("query", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("score", pa.float64(), nullable=False),
])


class TableError(ValueError):
    """A table that is missing or does not fit the format."""


def dataset_path(dataset_dir: str, name: str) -> str:
    """The Parquet file of table name in dataset_dir; a clear error if absent."""
    path = os.path.join(dataset_dir, name + ".parquet")
    if not os.path.isfile(path):
        raise TableError(f"dataset {dataset_dir}: table {name}: {path} does not exist "
                         "(is this a CroPS log format directory? see docs/dataset-format.md)")
    return path


def read_dataset(dataset_dir: str, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read table name (e.g. SEARCH) of the dataset in dataset_dir."""
    path = dataset_path(dataset_dir, name)
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, KeyError) as e:
        raise TableError(f"read {path}: {e}") from None


def train_search(dataset_dir: str, columns: list[str] | None = None) -> pa.Table:
    """The search rows of the train split: sources mine the train split only."""
    cols = None if columns is None else sorted(set(columns) | {"request_id"})
    search = read_dataset(dataset_dir, SEARCH, cols)
    split = read_dataset(dataset_dir, SPLIT, ["request_id", "split"])
    train_ids = split.filter(pc.equal(split["split"], SPLIT_TRAIN))["request_id"]
    out = search.filter(pc.is_in(search["request_id"], value_set=train_ids))
    return out if columns is None else out.select(columns)


def conform(table: pa.Table, schema: pa.Schema, what: str = "table") -> pa.Table:
    """Check table against schema (column names and order; types that cast
    safely, e.g. int64 -> int32 when every value fits; no nulls where the
    format forbids them) and return it cast to schema."""
    got = table.schema.names
    if got != schema.names:
        raise TableError(f"{what}: columns {got}, expected exactly {schema.names} in this order")
    arrays = []
    for f in schema:
        col = table[f.name]
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise TableError(f"{what}: column {f.name}: type {col.type}, expected {f.type} ({e})") from None
        if not f.nullable and col.null_count:
            raise TableError(f"{what}: column {f.name}: {col.null_count} null values; the format requires a value")
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema)


def write(table: pa.Table, path: str, schema: pa.Schema) -> None:
    """Check table against schema and write it to path as Parquet, atomically
    (temp file in the same directory + rename)."""
    out = conform(table, schema, what=f"write {path}")
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=os.path.basename(path) + ".tmp-")
    os.close(fd)
    try:
        pq.write_table(out, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_candidates(table: pa.Table, path: str) -> None:
    write(table, path, CANDIDATES)


def write_labels(table: pa.Table, path: str) -> None:
    write(table, path, LABELS)


def write_results(table: pa.Table, path: str) -> None:
    write(table, path, RESULTS)


def write_scores(table: pa.Table, path: str) -> None:
    write(table, path, SCORES)
