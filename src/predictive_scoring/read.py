"""Reading the raw tables: whole, or in bounded batches, with rows numbered as in the file.

Every frame read here has an index that counts the file's data rows from 0, so a check that names
``data row i + 1`` names the same row whether it saw the whole table or one batch of it. CSV cells
are read as text (ids keep their leading zeros; types are inferred later) and only ``na_values``
count as missing; Parquet cells keep their type. A missing or unreadable file is one
DataValidationError naming the file and the fix.

A CSV file's separator and quote character are the data section's when it sets them, otherwise
DuckDB's CSV sniffer finds them; either way the choice is logged once per file. A CSV holding a
NUL byte, or bytes that are not in its encoding, is refused with the line that holds them.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
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
    "CsvDialect",
    "csv_dialect",
    "read_batches",
    "read_header",
    "read_table",
    "row_example",
    "row_examples",
    "value_examples",
]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 1_000_000  # a few hundred MB in pandas for an events batch of 3 columns
MAX_EXAMPLES = 5

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".csv.zip", ".csv.bz2")
_SCAN_BYTES = 1 << 20  # the NUL scan reads the file in blocks of this size
_SNIFF_ROWS = 20_480  # rows DuckDB's sniffer looks at


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
    if isinstance(exc, pd.errors.EmptyDataError):
        return DataValidationError(
            [f"{path}: the file is empty (no header row); export it again with a header row"]
        )
    return DataValidationError(
        [
            f"{path}: cannot be read ({type(exc).__name__}: {str(exc).strip()}); export it "
            f"again as parquet or UTF-8 CSV with a header row"
        ]
    )


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is split into cells: separator, quote character and text encoding."""

    sep: str
    quote: str
    encoding: str
    detected: bool


def _first_nul(path: Path) -> tuple[int, bytes] | None:
    """The 1-based line of the first NUL byte in ``path`` and that line's bytes before it (at
    most one block), or None when it has none."""
    lines, carry = 1, b""
    with path.open("rb") as f:
        while block := f.read(_SCAN_BYTES):
            at = block.find(b"\x00")
            if at >= 0:
                start = block.rfind(b"\n", 0, at)
                before = block[start + 1 : at] if start >= 0 else carry + block[:at]
                return lines + block.count(b"\n", 0, at), before
            lines += block.count(b"\n")
            last = block.rfind(b"\n")
            carry = block[last + 1 :] if last >= 0 else (carry + block)[-_SCAN_BYTES:]
    return None


def _nul_problem(path: Path, line: int, before: bytes, sep: str) -> str:
    """The NUL byte's line and, when the header says, its column (quotes are not followed)."""
    where = f"line {line}"
    with path.open("rb") as f:
        header = f.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    names = [name.strip().strip('"') for name in header.split(sep)]
    index = before.count(sep.encode())
    if line > 1 and index < len(names):
        where += f", column '{names[index]}'"
    return (
        f"{path}: {where} holds a NUL byte (\\x00), which a text CSV never has: the file is "
        f"binary, truncated or saved as UTF-16; export it again as UTF-8 CSV"
    )


def _undecodable_line(path: Path, encoding: str) -> tuple[int, bytes] | None:
    """The 1-based line and the bytes that ``encoding`` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as exc:
                return number, line[exc.start : exc.end]
    return None


def _sniff_text(path: Path, encoding: str) -> tuple[str, str] | None:
    """(separator, quote) by Python's sniffer on the file's start, for encodings DuckDB lacks."""
    with path.open("rb") as f:
        sample = f.read(_SCAN_BYTES).decode(encoding, errors="replace")
    lines = sample.splitlines()[:-1] or sample.splitlines()  # the last line may be cut short
    try:
        found = csv.Sniffer().sniff("\n".join(lines[:200]), delimiters=",;\t|")
    except csv.Error:
        return None
    return found.delimiter, found.quotechar or '"'


def _sniff(path: Path, encoding: str) -> tuple[str, str] | None:
    """(separator, quote) of a CSV file by DuckDB's sniffer, or None when it cannot tell."""
    if codecs.lookup(encoding).name != "utf-8":
        return _sniff_text(path, encoding)
    import duckdb

    try:
        con = duckdb.connect()
        try:
            rows = con.execute(
                "SELECT Delimiter, Quote FROM sniff_csv(?, sample_size = ?)",
                [str(path), _SNIFF_ROWS],
            ).fetchall()
        finally:
            con.close()
    except duckdb.Error:
        return None
    if not rows:
        return None
    sep, quote = (str(v) for v in rows[0])
    if len(sep) != 1:
        return None
    return sep, (quote if len(quote) == 1 else '"')


@lru_cache(maxsize=64)
def _dialect(path: Path, sep: str | None, encoding: str, stamp: tuple[int, int]) -> CsvDialect:
    """The dialect of one version (``stamp``: size, mtime) of a CSV file, logged once."""
    text_csv = path.name.lower().endswith(".csv")
    nul = _first_nul(path) if text_csv else None
    sniffed = _sniff(path, encoding) if sep is None and text_csv else None
    if nul is not None:
        found = sep or (sniffed[0] if sniffed else ",")
        raise DataValidationError([_nul_problem(path, *nul, sep=found)])
    if sep is not None:
        dialect = CsvDialect(sep, '"', encoding, detected=False)
    elif sniffed is not None:
        dialect = CsvDialect(sniffed[0], sniffed[1], encoding, detected=True)
    else:
        dialect = CsvDialect(",", '"', encoding, detected=False)
    how = "detected" if dialect.detected else ("data.sep" if sep is not None else "default")
    logger.info(
        "%s: CSV separator %r (%s), quote %r, encoding %s",
        path,
        dialect.sep,
        how,
        dialect.quote,
        dialect.encoding,
    )
    return dialect


def csv_dialect(path: Path, *, sep: str | None = None, encoding: str = "utf-8") -> CsvDialect:
    """The separator, quote and encoding to read CSV ``path`` with: ``sep`` when given, else
    what DuckDB's sniffer finds (a comma when it cannot tell). Refuses a file with NUL bytes.
    """
    path = Path(path)
    stat = path.stat()
    return _dialect(path, sep, encoding, (stat.st_size, stat.st_mtime_ns))


def _read_csv(path: Path, na_values: Sequence[str], dialect: CsvDialect, **options: Any) -> Any:
    return pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        na_values=list(na_values),
        sep=dialect.sep,
        quotechar=dialect.quote,
        encoding=dialect.encoding,
        **options,
    )


def _decode_error(path: Path, dialect: CsvDialect, exc: UnicodeDecodeError) -> DataValidationError:
    where = _undecodable_line(path, dialect.encoding)
    line, raw = where if where is not None else (None, exc.object[exc.start : exc.end])
    at = f"line {line} holds" if line is not None else "it holds"
    return DataValidationError(
        [
            f"{path}: {at} bytes {raw!r} that are not {dialect.encoding}; save the file as "
            f"UTF-8, or set data.encoding in params.yaml to the export's encoding (cp1252 for "
            f"most Excel exports)"
        ]
    )


def _csv_error(path: Path, dialect: CsvDialect, exc: Exception) -> DataValidationError:
    if isinstance(exc, UnicodeDecodeError):
        return _decode_error(path, dialect, exc)
    return _unreadable(path, exc)


def read_table(
    path: Path,
    *,
    na_values: Sequence[str] = ("",),
    sep: str | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a parquet or CSV table by extension, with a RangeIndex of file rows.

    ``sep`` None: the separator is detected (:func:`csv_dialect`). Raises DataValidationError if
    the file is missing or unreadable.
    """
    path = Path(path)
    _check_exists(path)
    if _kind(path) == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # any reader error means the same thing to the user
            raise _unreadable(path, exc) from exc
        return frame.reset_index(drop=True)
    dialect = csv_dialect(path, sep=sep, encoding=encoding)
    try:
        frame = _read_csv(path, na_values, dialect)
    except Exception as exc:
        raise _csv_error(path, dialect, exc) from exc
    return frame.reset_index(drop=True)


def read_header(
    path: Path,
    *,
    na_values: Sequence[str] = ("",),
    sep: str | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """The table's columns as :func:`read_table` reads them, with no rows (reads no data)."""
    path = Path(path)
    _check_exists(path)
    if _kind(path) == "parquet":
        try:
            # The dataset reader pandas.read_parquet uses: the same columns, the same errors.
            frame = pq.ParquetDataset(path).schema.empty_table().to_pandas()
        except Exception as exc:
            raise _unreadable(path, exc) from exc
        return frame.reset_index(drop=True)
    dialect = csv_dialect(path, sep=sep, encoding=encoding)
    try:
        frame = _read_csv(path, na_values, dialect, nrows=0)
    except Exception as exc:
        raise _csv_error(path, dialect, exc) from exc
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
    sep: str | None = None,
    encoding: str = "utf-8",
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
    dialect: CsvDialect | None = None
    try:
        if _kind(path) == "parquet":
            batches: Iterator[pd.DataFrame] = _parquet_batches(path, columns, batch_rows)
        else:
            dialect = csv_dialect(path, sep=sep, encoding=encoding)
            usecols = list(columns) if columns is not None else None
            batches = iter(
                _read_csv(path, na_values, dialect, usecols=usecols, chunksize=batch_rows)
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
        if dialect is not None:
            raise _csv_error(path, dialect, exc) from exc
        raise _unreadable(path, exc) from exc
