"""Reading the raw tables: whole, or in bounded batches, with rows numbered as in the file.

Every frame read here has an index that counts the file's data rows from 0, so a check that names
``data row i + 1`` names the same row whether it saw the whole table or one batch of it. CSV cells
are read as text (ids keep their leading zeros; types are inferred later) and only ``na_values``
count as missing; Parquet cells keep their type. A missing or unreadable file is one
DataValidationError naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from predictive_scoring.errors import DataValidationError

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "MAX_EXAMPLES",
    "read_batches",
    "read_header",
    "read_table",
    "row_example",
    "row_examples",
    "value_examples",
]

DEFAULT_BATCH_ROWS = 1_000_000  # a few hundred MB in pandas for an events batch of 3 columns
MAX_EXAMPLES = 5

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".csv.zip", ".csv.bz2")


# --------------------------------------------------------------------------------------------
# Naming rows and values in messages


def _fmt(value: Any) -> str:
    text = str(value)
    return repr(text[:40] + "..." if len(text) > 40 else text)


def row_example(row: int, value: Any) -> str:
    """ "data row 3 '2024-13-01'" for the 0-based file row ``row`` holding ``value``."""
    return f"data row {int(row) + 1} {_fmt(value)}"


def row_examples(values: pd.Series, mask: pd.Series | np.ndarray) -> str:
    """'data row 3 '2024-13-01', data row 9 'abc'' for the first few rows where mask is true."""
    hits = values[np.asarray(mask, dtype=bool)].head(MAX_EXAMPLES)
    return ", ".join(row_example(i, v) for i, v in hits.items())


def value_examples(values: Iterable[Any]) -> str:
    """The first few values, quoted and shortened."""
    out: list[str] = []
    for v in values:
        if len(out) == MAX_EXAMPLES:
            break
        out.append(_fmt(v))
    return ", ".join(out)


# --------------------------------------------------------------------------------------------
# Reading


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_PARQUET):
        return "parquet"
    if name.endswith(_CSV):
        return "csv"
    raise DataValidationError([f"{path}: unknown file type; use a .parquet or .csv file"])


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DataValidationError(
            [f"{path}: file not found; check the path in the data section of params.yaml"]
        )


def _unreadable(path: Path, exc: Exception) -> DataValidationError:
    return DataValidationError(
        [
            f"{path}: cannot be read ({type(exc).__name__}: {exc}); export it again as "
            f"parquet or UTF-8 CSV with a header row"
        ]
    )


def _read_csv(path: Path, na_values: Sequence[str], **options: Any) -> Any:
    return pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=list(na_values), **options
    )


def _csv_options(sep: str) -> dict[str, Any]:
    """pandas' options for the data section's separator (a comma unless it says otherwise)."""
    return {"sep": sep}


def read_table(path: Path, *, na_values: Sequence[str] = ("",), sep: str = ",") -> pd.DataFrame:
    """Read a parquet or CSV table by extension, with a RangeIndex of file rows.

    Raises DataValidationError if the file is missing or unreadable.
    """
    path = Path(path)
    _check_exists(path)
    kind = _kind(path)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = _read_csv(path, na_values, **_csv_options(sep))
    except Exception as exc:  # any reader error means the same thing to the user
        raise _unreadable(path, exc) from exc
    return frame.reset_index(drop=True)


def read_header(path: Path, *, na_values: Sequence[str] = ("",), sep: str = ",") -> pd.DataFrame:
    """The table's columns as :func:`read_table` reads them, with no rows (reads no data)."""
    path = Path(path)
    _check_exists(path)
    kind = _kind(path)
    try:
        if kind == "parquet":
            # The dataset reader pandas.read_parquet uses: the same columns, the same errors.
            frame = pq.ParquetDataset(path).schema.empty_table().to_pandas()
        else:
            frame = _read_csv(path, na_values, nrows=0, **_csv_options(sep))
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    return frame.reset_index(drop=True)


def _parquet_batches(
    path: Path, columns: Sequence[str] | None, batch_rows: int
) -> Iterator[pd.DataFrame]:
    for part in pq.ParquetDataset(path).files:  # the file, or a folder's parts in read order
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows, columns=columns):
            # Through a Table, as pandas.read_parquet converts: the same dtypes batch by batch.
            yield pa.Table.from_batches([batch]).to_pandas()


def read_batches(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    na_values: Sequence[str] = ("",),
    sep: str = ",",
) -> Iterator[pd.DataFrame]:
    """The table's rows in batches of at most ``batch_rows``, indexed by their file row.

    Only ``columns`` are read (all when None). Each batch holds the values :func:`read_table`
    gives for the same rows, so a check applied batch by batch finds what it finds on the whole
    table; memory is bounded by a batch (and, for Parquet, by one row group being decoded).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    path = Path(path)
    _check_exists(path)
    kind = _kind(path)
    try:
        if kind == "parquet":
            batches: Iterator[pd.DataFrame] = _parquet_batches(path, columns, batch_rows)
        else:
            usecols = list(columns) if columns is not None else None
            batches = iter(
                _read_csv(
                    path, na_values, usecols=usecols, chunksize=batch_rows, **_csv_options(sep)
                )
            )
        start = 0
        for batch in batches:
            if columns is not None:
                batch = batch[list(columns)]  # the order asked for, as with Parquet
            batch.index = pd.RangeIndex(start, start + len(batch))
            start += len(batch)
            yield batch
    except DataValidationError:
        raise
    except Exception as exc:  # a file can also break half-way through
        raise _unreadable(path, exc) from exc
