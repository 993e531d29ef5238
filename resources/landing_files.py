"""Landing files turned into Arrow rows the engine can read safely: exact line numbers, bytes that are not UTF-8
kept (base64) instead of failing the read, literal paths, no symbolic link followed.

The engine never opens a landing file itself: globbing, split-dependent line numbers and whole-file decoding
errors are properties of engine file readers. Here each file is opened once (``O_NOFOLLOW``), read in blocks,
and written as Parquet to scratch beside the lakehouse; the engine reads that.

JSON lines (``read_json_lines``): one row per non-blank line — ``_line_number`` (1-based, physical), ``value``
(the line without its line break and a leading UTF-8 BOM; null when the line is not valid UTF-8),
``_invalid_utf8`` (the line's bytes, base64, when it is not valid UTF-8), ``_exact`` (every top-level
field's raw text, for the few lines whose numbers a double-based JSON parser would rewrite: ``1.10``,
``1e3``, 20-digit integers) and ``_json_types`` (the type of each top-level value that is an object, an array or
a boolean, which the engine's text of it does not tell from a string: ``true`` and ``"true"`` are both ``true``).

CSV (``read_csv_records``): one row per record — its first physical line, the raw record text, each header
column as a string, the problems of its shape (``_csv_error``) and, for records that are not UTF-8, their bytes.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import os
import re
import stat
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from json.decoder import scanstring
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.landing import LandingFile

BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 64 << 20
EXACT_TYPE = pa.map_(pa.string(), pa.string())
#: A JSON number token a double-based parser would not give back as written: ``-0``, 17+ digits, a fraction
#: ending in 0 after its first digit (``1.10``), a fraction with four leading zeros, or any exponent.
RISKY_NUMBER = r"[:,\[]\s*(?:-0\s*[,}\]]|-?(?:[0-9.]{17,}|[0-9]+\.[0-9]*[0-9]0\s*[,}\]]|[0-9]*\.0000|[0-9.]+[eE]))"
#: What precedes a top-level object, array or boolean (``"k": {``, ``"k": true``): lines without it have none.
MAYBE_TYPED = r":\s*[\[{tf]"
JSON_TYPES: dict[type, str] = {dict: "object", list: "array", bool: "boolean"}
_WS = re.compile(r"[ \t\r\n]*")
#: A UTF-16 surrogate: in decoded JSON text only from an escaped lone one (``\ud800``), which is no Unicode text.
_SURROGATE = re.compile("[\ud800-\udfff]")
_DECODER = json.JSONDecoder(parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


@dataclass
class FileRead:
    """What reading one landing file found: its lines (or records), blank ones, and those not UTF-8."""

    relative: str
    lines: int = 0
    blank: int = 0
    invalid_utf8: int = 0
    bom: bool = False
    rows: int = 0
    problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def open_landed(file: LandingFile) -> Iterator[BinaryIO]:
    """A landing file opened for reading without following a symbolic link (a link swapped in after listing).

    The file must stay as it was listed (size, and modification time when known) from the open to the end of the
    read: a writer still at work fails the read with ``FileChangedError``, and its day is refused, not published
    from part of the file."""
    fd = os.open(file.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise OSError(f"{file.relative} is not a regular file")
        _as_listed(file, opened)
        yield handle
        _as_listed(file, os.fstat(fd))


class FileChangedError(OSError):
    """A landing file changed between its listing and the end of its read (``strerror``: how, without the name)."""

    def __init__(self, relative: str, why: str) -> None:
        super().__init__(f"{relative} {why}")
        self.strerror = why


def _as_listed(file: LandingFile, now: os.stat_result) -> None:
    if now.st_size != file.size or (file.mtime_ns and now.st_mtime_ns != file.mtime_ns):
        raise FileChangedError(
            file.relative,
            f"changed while it was read (listed {file.size} bytes modified at {file.mtime_ns} ns, now "
            f"{now.st_size} bytes modified at {now.st_mtime_ns} ns); run the day again once it is written",
        )


# -- JSON lines ------------------------------------------------------------------------------------------------
JSON_LINE_FIELDS = (
    pa.field("_line_number", pa.int64()),
    pa.field("value", pa.string()),
    pa.field("_invalid_utf8", pa.string()),
    pa.field("_exact", EXACT_TYPE),
    pa.field("_json_types", EXACT_TYPE),
)


def read_json_lines(file: LandingFile, *, block_bytes: int = BLOCK_BYTES) -> tuple[list[pa.RecordBatch], FileRead]:
    """Every non-blank line of ``file`` with its exact line number, as record batches of ``JSON_LINE_FIELDS``."""
    read = FileRead(file.relative)
    batches = [_json_batch(block, read) for block in _blocks(file, block_bytes, read)]
    return [b for b in batches if b.num_rows], read


def _blocks(file: LandingFile, block_bytes: int, read: FileRead) -> Iterator[bytes]:
    """The file in blocks of whole lines (the last may lack its line break), a leading BOM removed."""
    carry, first = b"", True
    with open_landed(file) as handle:
        while True:
            chunk = handle.read(block_bytes)
            data = carry + chunk
            if first and not read.bom and data.startswith(BOM):
                read.bom, data = True, data[len(BOM) :]
            if not chunk:
                if data:
                    yield data
                return
            cut = data.rfind(b"\n") + 1
            if cut:
                block, carry, first = data[:cut], data[cut:], False
                yield block
            else:
                carry = data


def _split_lines(block: bytes) -> tuple[pa.BinaryArray, np.ndarray]:
    """The block's lines without ``\\n`` or a ``\\r`` before it, as one contiguous binary array, and which of
    them may be blank (empty, or starting with a byte that is not printable ASCII)."""
    if not block.endswith(b"\n"):
        block += b"\n"
    raw = np.frombuffer(block, dtype=np.uint8)
    breaks = np.flatnonzero(raw == 10)
    if np.any(raw[breaks[breaks > 0] - 1] == 13):  # CRLF: rare enough to copy the block
        raw = np.frombuffer(block.replace(b"\r\n", b"\n"), dtype=np.uint8)
        breaks = np.flatnonzero(raw == 10)
    offsets = np.concatenate(([0], breaks + 1)).astype(np.int32)
    with_breaks = pa.BinaryArray.from_buffers(
        pa.binary(), len(breaks), [None, pa.py_buffer(offsets), pa.py_buffer(raw)]
    )
    first_byte = raw[offsets[:-1]]  # an empty line's is its \n
    maybe_blank = (first_byte < 0x21) | (first_byte > 0x7E)
    return pc.binary_slice(with_breaks, 0, -1), maybe_blank  # drop each line's \n


def _json_batch(block: bytes, read: FileRead) -> pa.RecordBatch:
    """The block's non-blank lines, numbered on from the lines ``read`` has counted so far."""
    lines, maybe_blank = _split_lines(block)
    numbers = np.arange(read.lines + 1, read.lines + 1 + len(lines), dtype=np.int64)
    read.lines += len(lines)
    text, invalid = _as_utf8(lines)
    read.invalid_utf8 += int(pc.sum(pc.is_valid(invalid)).as_py() or 0)
    blank = np.zeros(len(lines), dtype=bool)
    candidates = np.flatnonzero(maybe_blank)
    if len(candidates):  # a line starting with printable ASCII is never blank: test only the others
        some = text.take(pa.array(candidates))
        empty_or_space = pc.or_(pc.equal(pc.utf8_length(some), 0), pc.utf8_is_space(some))
        blank[candidates] = pc.fill_null(empty_or_space, False).to_numpy(zero_copy_only=False)
    read.blank += int(blank.sum())
    if blank.any():
        keep = pa.array(~blank)
        text, invalid, numbers = text.filter(keep), invalid.filter(keep), numbers[~blank]
    read.rows += len(text)
    return pa.RecordBatch.from_arrays(
        [pa.array(numbers), text, invalid, _exact_column(text), _types_column(text)],
        schema=pa.schema(JSON_LINE_FIELDS),
    )


def _as_utf8(lines: pa.BinaryArray) -> tuple[pa.StringArray, pa.StringArray]:
    """The lines as text (null where not valid UTF-8) and, where not, their bytes in base64."""
    try:
        return lines.cast(pa.string()), pa.nulls(len(lines), pa.string())
    except pa.ArrowInvalid:
        pass
    text: list[str | None] = []
    invalid: list[str | None] = []
    for raw in lines.to_pylist():
        try:
            text.append(raw.decode("utf-8"))
            invalid.append(None)
        except UnicodeDecodeError:
            text.append(None)
            invalid.append(base64.b64encode(raw).decode("ascii"))
    return pa.array(text, pa.string()), pa.array(invalid, pa.string())


def _exact_column(text: pa.StringArray) -> pa.Array:
    """``_exact`` for lines with numbers a double would rewrite; null for every other line."""
    risky = pc.fill_null(pc.match_substring_regex(text, RISKY_NUMBER), False)
    indexes = np.flatnonzero(risky.to_numpy(zero_copy_only=False))
    if not len(indexes):
        return pa.nulls(len(text), EXACT_TYPE)
    values: list[list[tuple[str, str | None]] | None] = [None] * len(text)
    for i in indexes:
        fields = exact_fields(text[int(i)].as_py())
        values[i] = list(fields.items()) if fields is not None else None
    return pa.array(values, EXACT_TYPE)


def _types_column(text: pa.StringArray) -> pa.Array:
    """``_json_types`` of the lines with a top-level object, array or boolean; null for every other line."""
    maybe = pc.fill_null(pc.match_substring_regex(text, MAYBE_TYPED), False)
    indexes = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
    if not len(indexes):
        return pa.nulls(len(text), EXACT_TYPE)
    values: list[list[tuple[str, str]] | None] = [None] * len(text)
    for i in indexes:
        values[i] = list(json_types(text[int(i)].as_py()).items()) or None
    return pa.array(values, EXACT_TYPE)


def json_types(line: str) -> dict[str, str]:
    """The JSON type (object, array, boolean) of each top-level value of a JSON object line that has one of them;
    a repeated key, its last value's. Empty for any other line (the engine reads no line this parse does not), and
    for one with a key that is no Unicode text (an escaped lone surrogate: the engine judges that line)."""
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(parsed, dict) or any(_SURROGATE.search(key) for key in parsed):
        return {}
    return {key: JSON_TYPES[type(value)] for key, value in parsed.items() if type(value) in JSON_TYPES}


def exact_fields(line: str) -> dict[str, str | None] | None:
    """The top-level fields of a JSON object line as text: strings decoded, every other value exactly as written
    (numbers, ``true``, nested objects), null for ``null``; a repeated key keeps its last value. None when the
    line is not one JSON object, nests too deep to read here, or has a key or string value that is no Unicode text
    (an escaped lone surrogate): the engine's parse then judges it."""
    try:
        pos = _WS.match(line, 0).end()
        if line[pos] != "{":
            return None
        fields: dict[str, str | None] = {}
        pos = _WS.match(line, pos + 1).end()
        if line[pos] == "}":
            return fields if _WS.match(line, pos + 1).end() == len(line) else None
        while True:
            if line[pos] != '"':
                return None
            key, pos = scanstring(line, pos + 1)
            if _SURROGATE.search(key):
                return None
            pos = _WS.match(line, pos).end()
            if line[pos] != ":":
                return None
            start = _WS.match(line, pos + 1).end()
            value, pos = _DECODER.raw_decode(line, start)
            if isinstance(value, str) and _SURROGATE.search(value):
                return None
            fields[key] = value if isinstance(value, str) or value is None else line[start:pos]
            pos = _WS.match(line, pos).end()
            if line[pos] == "}":
                return fields if _WS.match(line, pos + 1).end() == len(line) else None
            if line[pos] != ",":
                return None
            pos = _WS.match(line, pos + 1).end()
    except (ValueError, IndexError, RecursionError):
        return None


# -- CSV ----------------------------------------------------------------------------------------------------
CSV_AUDIT = ("_line_number", "_raw_record", "_invalid_utf8", "_csv_error")
#: The prefix of the pipeline's working columns (``t_amount``, silver's typed values): no landed column has it.
WORKING_PREFIX = "t_"


def column_name(landed: str, reserved: Collection[str] = ()) -> str:
    """A landed name (a JSON key, a CSV header) as a snake_case column name, ``x_`` before it when it starts with a
    digit or ``WORKING_PREFIX`` or names a ``reserved`` column (audit, partition): the one rule for both sources,
    so a landed column never replaces or clashes with the pipeline's."""
    name = re.sub(r"[^0-9a-z_]", "_", landed.lower()) or "_"
    clashes = name[0].isdigit() or name.startswith(WORKING_PREFIX) or name in reserved
    return f"x_{name}" if clashes else name


@dataclass
class CsvFile:
    """One CSV file's records: the column names from its header and one dict per record."""

    columns: list[str]
    records: list[dict[str, object]]
    read: FileRead


def read_csv_records(file: LandingFile, *, required: Sequence[str], reserved: Collection[str] = ()) -> CsvFile:
    """Every record of a CSV file with its first physical line, raw text and shape problems (never raises on
    content: a bad header, a record of the wrong length or a line the csv module cannot read is described in
    ``_csv_error``). A header column named like a ``reserved`` column or the reader's own is renamed
    (``column_name``)."""
    read = FileRead(file.relative)
    with open_landed(file) as handle:
        data = handle.read()
    if data.startswith(BOM):
        read.bom, data = True, data[len(BOM) :]
    text = data.decode("utf-8", "surrogateescape")
    physical = _physical_lines(text)
    read.lines = len(physical)
    for header in _record_spans(physical):  # blank lines before the header are blank lines, not the header
        if not _blank(physical, header, width=None):
            break
        read.blank += header.last - header.first + 1
    else:
        return CsvFile([], [], read)
    columns, header_problem = _header(header.values, required, reserved)
    if header_problem and header.last > header.first:  # a stray quote may have folded records into the header
        header = _line_alone(physical, header.first)
        columns, header_problem = _header(header.values, required, reserved)
    if header.problem:
        header_problem = "; ".join(filter(None, [f"header: {header.problem}", header_problem]))
    records = []
    for span in _record_spans(physical, header.last, width=len(columns)):
        if _blank(physical, span, width=len(columns)):
            read.blank += span.last - span.first + 1
            continue
        raw = "".join(physical[span.first - 1 : span.last]).rstrip("\r\n")
        records.append(_record(columns, span, raw, header_problem))
    read.rows = len(records)
    read.invalid_utf8 = sum(1 for r in records if r["_invalid_utf8"])
    return CsvFile(columns, records, read)


def _blank(physical: list[str], span: _Span, *, width: int | None) -> bool:
    """A record of no fields, or one unquoted line of nothing but white space, Unicode spaces included (as in JSON
    lines); in a file of one column (``width``; None before the header) such a line is that column's value."""
    if not span.values:
        return not span.problem
    return width != 1 and span.first == span.last and not physical[span.first - 1].strip()


def _physical_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only (``str.splitlines`` also splits on form feeds and the like), ends kept."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    return lines + ([parts[-1]] if parts[-1] else [])


#: A line read alone that ends inside a quoted field: a stray quote, or a quoted line break in a record that
#: did not come out well formed.
OPEN_QUOTE = "unbalanced quote (a quoted field opened on this line is not closed)"
#: A line whose quoted field is followed by more text before the next delimiter (``"Cust"3``).
MID_FIELD_QUOTE = "a quoted field closes mid-field (text follows its closing quote)"


@dataclass
class _Span:
    """One CSV record as read: its physical lines (1-based, both included), its fields and, when it did not
    read cleanly, why (``OPEN_QUOTE``, or the csv module's error)."""

    first: int
    last: int
    values: list[str]
    problem: str | None = None


def _record_spans(physical: list[str], start: int = 0, width: int | None = None) -> Iterator[_Span]:
    """The records from physical line ``start`` (0-based) on, quoted line breaks included.

    A record that does not read cleanly, or spans several lines and looks ``_folded``, is read again as its first
    line alone, and reading goes on from the line after that one: a bad line costs only itself."""
    while start < len(physical):
        for span in _parse(physical, start, len(physical)):
            if span.problem or (span.last > span.first and _folded(physical, span, width)):
                yield _quotes_checked(physical, _line_alone(physical, span.first))
                start = span.first
                break
            yield _quotes_checked(physical, span)
        else:
            return


def _folded(physical: list[str], span: _Span, width: int | None) -> bool:
    """Whether a record spanning several lines is lines a stray quote folded up to the next quote, not a record
    with quoted line breaks: it has not ``width`` fields, or a quoted field of it closes mid-field."""
    return (width is not None and len(span.values) != width) or not _reads_strictly(physical, span)


def _quotes_checked(physical: list[str], span: _Span) -> _Span:
    """``span``, failing with ``MID_FIELD_QUOTE`` when it is one line whose quoted field closes mid-field
    (``C3,"Cust"3,…``: the lenient reader took ``Cust3`` without a word)."""
    if span.problem or span.last > span.first or '"' not in physical[span.first - 1]:
        return span
    return span if _reads_strictly(physical, span) else replace(span, problem=MID_FIELD_QUOTE)


def _reads_strictly(physical: list[str], span: _Span) -> bool:
    """Whether every quoted field of ``span`` closes just before a delimiter or a line break (the lenient
    reader takes what follows a closing quote as text, a strict one refuses it)."""
    try:
        for _ in csv.reader(physical[span.first - 1 : span.last], strict=True):
            pass
    except csv.Error:
        return False
    return True


def _line_alone(physical: list[str], number: int) -> _Span:
    """Physical line ``number`` (1-based) read as a record by itself."""
    return next(_parse(physical, number - 1, number), _Span(number, number, []))


def _parse(physical: list[str], start: int, stop: int) -> Iterator[_Span]:
    """The records of physical lines ``start`` to ``stop`` (0-based, ``stop`` excluded) as the csv module reads
    them; the first it cannot read (a field past ``csv.field_size_limit()``, a bare carriage return) ends them."""
    consumed, ended = start, False

    def feed() -> Iterator[str]:
        nonlocal consumed, ended
        for index in range(start, stop):
            consumed += 1
            yield physical[index]
        ended = True

    reader = csv.reader(feed(), strict=False)
    first = start + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            message = str(error).split(" - ")[0]  # without its hint about opening files in universal-newline mode
            yield _Span(first, consumed, [], f"the csv module cannot read it ({message})")
            return
        # the reader gives a record only after its input ran out when that record ends inside a quoted field
        yield _Span(first, consumed, values, OPEN_QUOTE if ended else None)
        first = consumed + 1


def _header(fields: list[str], required: Sequence[str], reserved: Collection[str]) -> tuple[list[str], str | None]:
    """The columns of a header (each renamed by ``column_name`` where it clashes, ``_2`` after a repeat) and its
    problems: a repeated column, a contract column missing."""
    names = [column_name(f.strip()) for f in fields]
    problems = []
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"header: repeated column {', '.join(dupes)}")
    missing = [r for r in required if r not in names]
    if missing:
        problems.append(f"header: no column {', '.join(missing)}")
    taken = {*CSV_AUDIT, *reserved} - set(required)
    unique: list[str] = []
    for field_ in fields:
        name = column_name(field_.strip(), taken)
        candidate, n = name, 2
        while candidate in unique or candidate in taken:
            candidate, n = f"{name}_{n}", n + 1
        unique.append(candidate)
    return unique, "; ".join(problems) or None


def _record(columns: list[str], span: _Span, raw: str, header_problem: str | None) -> dict:
    problems = [header_problem] if header_problem else []
    if span.problem:
        problems.append(f"shape: {span.problem}")
    if span.values and len(span.values) != len(columns):  # no values: the csv module could not read the line
        problems.append(f"shape: {len(span.values)} fields, the header has {len(columns)}")
    invalid = _has_surrogates(raw)
    record: dict[str, object] = {c: (None if invalid else v) for c, v in zip(columns, span.values, strict=False)}
    record.update(
        _line_number=span.first,
        _raw_record=raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") if invalid else raw,
        _invalid_utf8=base64.b64encode(raw.encode("utf-8", "surrogateescape")).decode("ascii") if invalid else None,
        _csv_error="; ".join(problems) or None,
    )
    return record


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def csv_table(files: Iterable[CsvFile], columns: Sequence[str]) -> pa.Table:
    """The records of several CSV files as one table of strings over ``columns`` (absent values null)."""
    names = [*columns, *CSV_AUDIT]
    rows = [r for f in files for r in f.records]
    arrays = [pa.array([r.get(c) for r in rows], pa.int64() if c == "_line_number" else pa.string()) for c in names]
    return pa.table(arrays, names=names)
