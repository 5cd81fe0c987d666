"""Reading labelled rows from delimited text, file by file and line by line, in bounded memory.

Every physical line ends up in a kept row, a blank line, or a reported bad row naming its file,
line and (where one applies) column. With `on_bad_rows="error"` the first bad row stops the
read; with `"skip"` each lost row is recorded once and counted.

Two parsers: without quoting (the default for tab-delimited files) a line is a row and fields are
split on the delimiter; with quoting the csv module parses strictly (a closing quote must be
followed by the delimiter or the line end), and a quoted field that runs over lines which look
like whole rows is reported as an unclosed quote instead of merging those rows into one. The
lines it swallowed are then read again as rows, so one stray quote costs one row.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import gzip
import io
import re
from collections import Counter
from typing import Iterator, List, Optional, Set, Tuple

from components import storage
from components.errors import InputFormatError
from components.options import AUTO, CSVParams

# The csv module's default field limit, kept for files read without quoting too: one field (a
# text) may hold at most this many characters.
MAX_FIELD_CHARS = csv.field_size_limit()
_GZIP_MAGIC = b"\x1f\x8b"
_LONE_CR = re.compile("(?<=\r)(?!\n)")


@dataclasses.dataclass
class BadRow:
    source: str
    line: int
    column: Optional[str]
    reason: str
    kind: str = "malformed row"

    def to_dict(self):
        return dataclasses.asdict(self)


class BadRowLog:
    """Every bad row of a read, counted by kind; the first `keep` kept in full (all when None)."""

    def __init__(self, keep: Optional[int] = None):
        self.keep = keep
        self.total = 0
        self.by_kind: Counter = Counter()
        self.rows: List[BadRow] = []

    def add(self, row: BadRow) -> None:
        self.total += 1
        self.by_kind[row.kind] += 1
        if self.keep is None or len(self.rows) < self.keep:
            self.rows.append(row)


@dataclasses.dataclass
class ReadResult:
    source: str
    rows: List[Tuple[str, str]]
    bad_rows: List[BadRow]
    files: List[str] = dataclasses.field(default_factory=list)


def _auto_text_column(fieldnames: List[str], label_column: str) -> str:
    others = [name for name in fieldnames if name != label_column]
    if len(set(others)) == 1:
        return others[0]
    for name in ("text", "sentence"):
        if name in others:
            return name
    return "text"  # not in the header: the missing-column error lists what is there


def _quote_problem(line: str, delimiter: str, quotechar: str) -> Tuple[int, Optional[str]]:
    """(field index, problem) for the first quoting fault on one line.

    The problem is "unclosed" (a quoted field still open at the line end) or "text after the
    closing quote"; None when the line's quoting is sound. Only run on rows already found bad.
    """
    field, at_start, quoted, i, end = 0, True, False, 0, len(line)
    while i < end:
        c = line[i]
        if quoted:
            if c == quotechar:
                if i + 1 < end and line[i + 1] == quotechar:
                    i += 2
                    continue
                quoted = False
                if i + 1 < end and line[i + 1] not in (delimiter, "\r", "\n"):
                    return field, "text after the closing quote"
        elif c == delimiter:
            field, at_start = field + 1, True
            i += 1
            continue
        elif c == quotechar and at_start:
            quoted = True
        at_start = False
        i += 1
    return field, ("unclosed" if quoted else None)


class _LineSource:
    """Feeds lines to csv.reader, remembering which lines each record took, with push-back."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self.number = 0
        self.pending: List[Tuple[int, str]] = []
        self.taken: List[Tuple[int, str]] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pending:
            item = self.pending.pop()
        else:
            line = next(self._lines)
            self.number += 1
            item = (self.number, line)
        self.taken.append(item)
        return item[1]

    def push_back(self, items: List[Tuple[int, str]]) -> None:
        self.pending.extend(reversed(items))


class _FileReader:
    """One file of a source: decoding, header, columns, and the rows."""

    def __init__(self, uri: str, params: CSVParams, bad: BadRowLog, known_labels: Set[str],
                 only_file: bool):
        self.uri = uri
        self.params = params
        self.bad = bad
        self.known_labels = known_labels
        self.only_file = only_file
        base, member = storage.split_member(uri)
        name = member or base
        self.delimiter = params.delimiter_for(name)
        self.quotechar = params.quotechar_for(name)
        self.undecodable = {}
        self._source: Optional[_LineSource] = None

    # --- bytes to lines ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _open_binary(self):
        """The file's bytes, gunzipped when they are gzip (by content, whatever the name)."""
        local = storage.resolve_input(self.uri)
        with open(local, "rb") as raw:
            if raw.read(2) != _GZIP_MAGIC:
                raw.seek(0)
                yield raw
                return
            raw.seek(0)
            with io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), buffer_size=1 << 20) as unzipped:
                try:
                    yield unzipped
                except (OSError, EOFError) as error:  # a truncated or corrupt gzip stream
                    raise InputFormatError(f"not a readable gzip file ({error})", path=self.uri) from error

    def _lines(self, binary) -> Iterator[str]:
        """Decoded lines with their endings; undecodable ones are decoded with replacement and
        remembered by line number, so the row they belong to is reported, not the whole file."""
        encoding = self.params.encoding
        try:
            codec = codecs.lookup(encoding).name
        except LookupError as error:
            raise InputFormatError(f"unknown encoding {encoding!r}", path=self.uri) from error
        if codec.startswith(("utf-16", "utf-32")):
            yield from self._wide_lines(binary, encoding)
            return
        strip_bom = codec.startswith("utf")
        number = 0
        undecodable = self.undecodable
        for raw in binary:
            try:
                line = raw.decode(encoding)
                reason = None
            except UnicodeDecodeError as error:
                reason = (f"bytes not decodable as {encoding} at byte {error.start} of the line "
                          f"({raw[error.start:error.start + 4]!r})")
                line = raw.decode(encoding, "replace")
            if number == 0 and strip_bom and line.startswith("\ufeff"):
                line = line[1:]
            if reason is None and ("\r" not in line or (line.endswith("\r\n") and line.count("\r") == 1)):
                number += 1
                yield line
                continue
            for piece in _LONE_CR.split(line):  # a lone CR ends a line too, as in the csv module
                if piece:
                    number += 1
                    if reason is not None:
                        undecodable[number] = reason
                    yield piece

    def _wide_lines(self, binary, encoding: str) -> Iterator[str]:
        text = io.TextIOWrapper(binary, encoding=encoding, newline="")
        number = 0
        try:
            for line in text:
                if number == 0 and line.startswith("\ufeff"):
                    line = line[1:]
                number += 1
                yield line
        except UnicodeDecodeError as error:
            raise InputFormatError(f"bytes not decodable as {encoding} after line {number} ({error.reason}); "
                                   "fix the file or pass the right encoding", path=self.uri,
                                   line=number + 1) from error

    # --- reporting --------------------------------------------------------------------------

    def reject(self, line: int, column: Optional[str], reason: str, kind: str) -> None:
        if self.params.on_bad_rows == "error":
            advice = ("; fix the file or pass the right encoding" if kind == "undecodable bytes"
                      else " (pass on_bad_rows='skip' to count and skip such rows)")
            raise InputFormatError(reason + advice, path=self.uri, line=line, column=column)
        self.bad.add(BadRow(self.uri, line, column, reason, kind))

    # --- header and columns -----------------------------------------------------------------

    def _columns(self, fieldnames: List[str], header_line: int) -> Tuple[str, int, int]:
        params = self.params
        text_column = (_auto_text_column(fieldnames, params.label_column) if params.text_column == AUTO
                       else params.text_column)
        line = header_line or None
        quoting = f"quotechar {self.quotechar!r}" if self.quotechar else "no quoting"
        for column in (text_column, params.label_column):
            if column not in fieldnames:
                raise InputFormatError(
                    f"no column named {column!r}; the header has {fieldnames} "
                    f"(delimiter {self.delimiter!r}, {quoting}). Set text_column/label_column, or "
                    "fieldnames for a file without a header", path=self.uri, line=line, column=column)
            positions = [i + 1 for i, name in enumerate(fieldnames) if name == column]
            if len(positions) > 1:
                raise InputFormatError(
                    f"the header names column {column!r} {len(positions)} times (fields {positions}); "
                    "rename the duplicates so it is clear which one to read",
                    path=self.uri, line=line, column=column)
        return text_column, fieldnames.index(text_column), fieldnames.index(params.label_column)

    def _header_unquoted(self, lines: Iterator[str]) -> Tuple[List[str], int]:
        number = 0
        for line in lines:
            number += 1
            stripped = line.rstrip("\r\n")
            if stripped.strip():
                if number in self.undecodable:
                    raise InputFormatError(f"unreadable header: {self.undecodable[number]}", path=self.uri,
                                           line=number)
                return [name.strip() for name in stripped.split(self.delimiter)], number
        self._empty()
        return [], number

    def _header_quoted(self, reader, source: _LineSource) -> Tuple[List[str], int]:
        while True:
            source.taken.clear()
            try:
                record = next(reader)
            except StopIteration:
                self._empty()
                return [], source.number
            except csv.Error as error:
                raise InputFormatError(f"unreadable header: {error}", path=self.uri,
                                       line=source.taken[0][0] if source.taken else 1) from error
            if record and any(field.strip() for field in record):
                return [name.strip() for name in record], source.taken[-1][0]

    def _empty(self) -> None:
        if self.only_file:
            raise InputFormatError("the file is empty", path=self.uri)

    def _csv_reader(self, source, strict: bool = True):
        return csv.reader(source, delimiter=self.delimiter, quotechar=self.quotechar,
                          quoting=csv.QUOTE_MINIMAL, doublequote=True, strict=strict)

    def header(self) -> Tuple[List[str], int]:
        """Reads only the header (or takes `fieldnames`) and checks the columns; for early checks."""
        with self._open_binary() as binary:
            lines = self._lines(binary)
            if self.params.fieldnames:
                fieldnames, number = [n.strip() for n in self.params.fieldnames], 0
            elif self.quotechar:
                fieldnames, number = self._header_quoted(*self._reader_and_source(lines))
            else:
                fieldnames, number = self._header_unquoted(lines)
            if fieldnames:
                self._columns(fieldnames, number)
            return fieldnames, number

    def _reader_and_source(self, lines):
        self._source = _LineSource(lines)
        return self._csv_reader(self._source), self._source

    # --- rows -------------------------------------------------------------------------------

    def _is_header_row(self, fields: List[str], fieldnames: List[str], text_index: int, label_index: int) -> bool:
        folded = [f.strip().casefold() for f in fields]
        return (folded == [n.casefold() for n in fieldnames]
                or folded[label_index] == self.params.label_column.casefold())

    def _header_row(self, number: int, fields: List[str]) -> None:
        self.reject(number, None, f"this first row repeats column names ({fields}): the file has a header "
                                  "but fieldnames were given; drop fieldnames and name the columns with "
                                  "text_column/label_column", "header row")

    def rows(self) -> Iterator[Tuple[str, str, str, int]]:
        """Yields (text, label, file, line) for each good row; reports the others. Returns how
        many it yielded."""
        with self._open_binary() as binary:
            lines = self._lines(binary)
            given = [n.strip() for n in self.params.fieldnames] if self.params.fieldnames else None
            if self.quotechar:
                reader, source = self._reader_and_source(lines)
                fieldnames, header_line = (given, 0) if given else self._header_quoted(reader, source)
                if not fieldnames:
                    return 0
                return (yield from self._rows_quoted(reader, source, fieldnames, header_line, bool(given)))
            else:
                fieldnames, header_line = (given, 0) if given else self._header_unquoted(lines)
                if not fieldnames:
                    return 0
                return (yield from self._rows_unquoted(lines, fieldnames, header_line, bool(given)))

    def _too_long(self, number: int, fields: List[str], fieldnames: List[str]) -> bool:
        for name, value in zip(fieldnames, fields):
            if len(value) > MAX_FIELD_CHARS:
                self.reject(number, name, f"the field holds {len(value):,} characters; at most "
                                          f"{MAX_FIELD_CHARS:,} are read", "field too long")
                return True
        return False

    def _rows_unquoted(self, lines, fieldnames, header_line, given):
        text_column, text_index, label_index = self._columns(fieldnames, header_line)
        label_column = self.params.label_column
        delimiter, n, uri = self.delimiter, len(fieldnames), self.uri
        undecodable, reject = self.undecodable, self.reject
        first = header_line + 1 if given else -1
        number = header_line
        kept = 0
        for line in lines:
            number += 1
            fields = line.rstrip("\r\n").split(delimiter)
            if undecodable and number in undecodable:
                reject(number, None, undecodable.pop(number), "undecodable bytes")
                continue
            if len(fields) != n:
                if len(fields) == 1 and not fields[0]:
                    continue  # a blank line is not a row
                reject(number, None, f"expected {n} fields, found {len(fields)}", "wrong field count")
                continue
            if number == first:
                first = -1
                if self._is_header_row(fields, fieldnames, text_index, label_index):
                    self._header_row(number, fields)
                    continue
            text = fields[text_index]
            if not text or text.isspace():
                reject(number, text_column, "empty text", "empty text")
                continue
            label = fields[label_index].strip()
            if not label:
                reject(number, label_column, "empty label", "empty label")
                continue
            if len(line) > MAX_FIELD_CHARS and self._too_long(number, fields, fieldnames):
                continue
            kept += 1
            yield text, label, uri, number
        return kept

    def _looks_like_row(self, line: str, n: int, label_index: int) -> bool:
        fields = next(self._csv_reader([line], strict=False), [])
        if len(fields) != n:
            return False
        label = fields[label_index].strip()
        return bool(label) and (not self.known_labels or label in self.known_labels)

    def _rows_quoted(self, reader, source, fieldnames, header_line, given):
        text_column, text_index, label_index = self._columns(fieldnames, header_line)
        label_column = self.params.label_column
        n, uri, reject, known = len(fieldnames), self.uri, self.reject, self.known_labels
        undecodable = self.undecodable
        first = True
        kept = 0
        while True:
            source.taken.clear()
            error = None
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                record, error = None, str(exc)
            taken = source.taken
            if not taken:
                break
            number = taken[0][0]
            if len(taken) > 1 or error is not None:
                if self._span_problem(record, error, list(taken), fieldnames, label_index):
                    continue
            if undecodable:
                hit = next((num for num, _ in taken if num in undecodable), None)
                if hit is not None:
                    reject(hit, None, undecodable.pop(hit), "undecodable bytes")
                    continue
            if not record:
                continue  # a blank line is not a row
            if len(record) != n:
                reject(number, None, f"expected {n} fields, found {len(record)}", "wrong field count")
                continue
            if first and given:
                first = False
                if self._is_header_row(record, fieldnames, text_index, label_index):
                    self._header_row(number, record)
                    continue
            first = False
            text = record[text_index]
            if not text or text.isspace():
                reject(number, text_column, "empty text", "empty text")
                continue
            label = record[label_index].strip()
            if not label:
                reject(number, label_column, "empty label", "empty label")
                continue
            known.add(label)
            kept += 1
            yield text, label, uri, number
        return kept

    def _span_problem(self, record, error, taken, fieldnames, label_index) -> bool:
        """Judges a record that failed to parse or ran over several lines; True when it was
        reported (and, for an unclosed quote, its later lines pushed back to be read again)."""
        n = len(fieldnames)
        start, end = taken[0][0], taken[-1][0]
        lines = [line for _, line in taken]
        index, problem = _quote_problem(lines[0], self.delimiter, self.quotechar)
        column = fieldnames[index] if index < n else None
        wrong_count = record is not None and len(record) != n and bool(record)
        if error is not None or wrong_count:
            rowlike = sum(self._looks_like_row(line, n, label_index) for line in lines[1:])
            if rowlike:
                self._unclosed(start, end, column, rowlike, taken)
                return True
            if len(taken) == 1:
                if error and "field limit" in error:
                    self.reject(start, None, f"a field holds more than {MAX_FIELD_CHARS:,} characters, the "
                                             "most that is read", "field too long")
                else:
                    detail = f"{problem} in this field" if problem else error
                    self.reject(start, column if problem else None, f"malformed row: {detail}", "malformed row")
                return True
            if error is not None:
                self.reject(start, column, f"malformed row spanning lines {start}-{end}: {error}", "malformed row")
                return True
            return False  # a multi-line record with the wrong field count: reported by the caller
        middle = lines[1:-1]
        if middle and self.known_labels and all(self._looks_like_row(line, n, label_index) for line in middle):
            self._unclosed(start, end, column, len(middle), taken)
            return True
        return False

    def _unclosed(self, start, end, column, rowlike, taken) -> None:
        self.reject(start, column,
                    f"unclosed quote: the quoted field opened on this line runs on to line {end}, over "
                    f"{rowlike} line(s) that look like rows of their own. Close the quote, or read the file "
                    "with quotechar='none' if it uses no quoting; the lines after this one are read as rows",
                    "unclosed quote")
        self._source.push_back(taken[1:])


def iter_rows(uri: str, params: CSVParams, bad: BadRowLog, known_labels: Optional[Set[str]] = None,
              files: Optional[List[str]] = None) -> Iterator[Tuple[str, str, str, int]]:
    """(text, label, file, line) for every good row of a source: a file, glob or folder.

    Each shard is read with its own header, delimiter and line numbers. Raises when the whole
    source yields no row. `files`, when given, receives the files read.
    """
    paths = storage.expand_inputs(uri)
    known = known_labels if known_labels is not None else set()
    count = 0
    for path in paths:
        if files is not None:
            files.append(path)
        reader = _FileReader(path, params, bad, known, only_file=len(paths) == 1)
        count += yield from reader.rows()
    if not count:
        raise InputFormatError("no usable rows (only a header, or every row was rejected)", path=uri)


def check_headers(uri: str, params: CSVParams) -> None:
    """Checks the header of every local file of a source before anything runs."""
    for path in storage.expand_inputs(uri):
        _FileReader(path, params, BadRowLog(), set(), only_file=True).header()


def read_delimited(uri: str, params: CSVParams) -> ReadResult:
    """Every good (text, label) row of a source in memory, with its bad rows (the API's reader)."""
    bad = BadRowLog()
    files: List[str] = []
    rows = [(text, label) for text, label, _, _ in iter_rows(uri, params, bad, files=files)]
    return ReadResult(uri, rows, bad.rows, files)
