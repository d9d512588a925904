"""Segments in Blob Storage: Customer Insights exports (model.json + partitions) and plain CSVs.

A segment is read in three steps: `get_segment` finds its current version (partitions pinned by
ETag), `plan_chunks` cuts each partition into byte ranges of N records in one streaming pass, and
`read_chunk` (on a worker, from a queue message) reads one range back as rows.
"""
from __future__ import annotations

import json
import posixpath
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import count, repeat
from typing import Iterator, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from .csvscan import (
    CsvFormat,
    CsvScanError,
    CsvScanner,
    RecordProblem,
    ReadFn,
    chunk_fields,
    iter_fields,
)
from .rejects import RejectReason, RowRejection

__all__ = [
    "CsvFormat", "Chunk", "Partition", "RawRow", "Segment", "SegmentChangedError", "SegmentError",
    "SegmentNotFoundError", "get_segment", "list_segments", "plan_chunks", "read_chunk",
    "segments_affected_by_blob",
]

CI_PREFIX = "CustomerInsights_"
MODEL_JSON = "model.json"
MAX_CHUNK_JSON_BYTES = 32 * 1024  # a queue message holds 64 KB, base64 makes it 48 KB of JSON
LAYOUT_CI = "customerInsights"
LAYOUT_PLAIN = "plain"
# <Table>/<yyyy>/<MM>/<dd>/<HHmm>/<file> relative to the export folder
_CI_FOLDER = re.compile(r"^(?P<table>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<hm>\d{4})/[^/]+$")
_PARTITION_NUMBER = re.compile(r"_(\d+)\.csv$", re.IGNORECASE)


class SegmentError(Exception):
    """A segment cannot be read; the message names the blob and, where it applies, the row."""


class SegmentNotFoundError(SegmentError):
    pass


class SegmentChangedError(SegmentError):
    """A blob was replaced or deleted after it was planned: its chunks would mix two versions."""


@dataclass(frozen=True)
class Partition:
    blob: str  # path inside the segments container
    etag: str
    size: int


@dataclass(frozen=True)
class Segment:
    name: str
    layout: str  # LAYOUT_CI | LAYOUT_PLAIN
    columns: tuple[str, ...]
    updated_at: datetime
    partitions: tuple[Partition, ...]
    format: CsvFormat
    source: str  # model.json path, or the plain CSV / folder path


@dataclass(frozen=True)
class Chunk:
    """One unit of work (one queue message): records [first_row, first_row + row_count) of a partition."""

    segment: str
    blob: str
    etag: str
    start: int  # byte offsets in the blob, end exclusive, on record boundaries
    end: int
    first_row: int  # 1-based data-row number within the partition
    row_count: int
    columns: tuple[str, ...]
    format: CsvFormat

    def to_dict(self) -> dict:
        return {
            "segment": self.segment, "blob": self.blob, "etag": self.etag, "start": self.start,
            "end": self.end, "firstRow": self.first_row, "rowCount": self.row_count,
            "columns": list(self.columns), "format": self.format.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Chunk":
        return cls(
            segment=d["segment"], blob=d["blob"], etag=d["etag"], start=int(d["start"]), end=int(d["end"]),
            first_row=int(d["firstRow"]), row_count=int(d["rowCount"]), columns=tuple(d["columns"]),
            format=CsvFormat.from_dict(d["format"]),
        )


class RawRow(NamedTuple):
    """One data row. A NamedTuple rather than a frozen dataclass: a run makes a million of them and
    this is the cheapest immutable typed record to create."""

    number: int  # 1-based data-row number within the partition
    fields: list[str] | None
    problem: RowRejection | None  # why a row that cannot be used is rejected


# ---------------------------------------------------------------- blob access


def _blob_reader(container: ContainerClient, blob: str, etag: str) -> ReadFn:
    """Ranged reads of one blob version: a replaced or deleted blob raises SegmentChangedError."""

    def read(offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            return container.download_blob(
                blob, offset=offset, length=length, etag=etag, match_condition=MatchConditions.IfNotModified,
                max_concurrency=1,
            ).readall()
        except ResourceModifiedError:
            raise SegmentChangedError(
                f"blob {blob} was replaced or deleted after it was planned (ETag {etag} no longer matches): "
                "start a new run to read the new version"
            ) from None
        except ResourceNotFoundError:
            raise SegmentChangedError(f"blob {blob} was deleted after it was planned") from None

    return read


class _ReadAhead:
    """Sequential ranged reads with the next range already downloading while the caller scans.

    Planning is one forward pass, so the range after the one asked for is almost always the next
    one asked for; the download (I/O, no GIL) overlaps the scan (CPU). Costs one extra block.
    """

    def __init__(self, read: ReadFn, executor: ThreadPoolExecutor):
        self._read = read
        self._executor = executor
        self._pending: tuple[int, int, Future] | None = None

    def __call__(self, offset: int, length: int) -> bytes:
        pending, self._pending = self._pending, None
        if pending and pending[:2] == (offset, length):
            data = pending[2].result()
        else:
            if pending:
                pending[2].cancel()
            data = self._read(offset, length)
        if length > 0 and len(data) == length:
            self._pending = (offset + length, length, self._executor.submit(self._read, offset + length, length))
        return data


def _read_json(container: ContainerClient, blob: str) -> dict:
    try:
        data = container.download_blob(blob).readall()
    except ResourceNotFoundError:
        raise SegmentError(f"{blob} does not exist") from None
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SegmentError(f"{blob} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise SegmentError(f"{blob} is not a CDM model (expected a JSON object)")
    return doc


# ---------------------------------------------------------------- Customer Insights layout


@dataclass(frozen=True)
class _ListedPartition:
    blob: str
    format: CsvFormat


def _export_folder(model_blob: str) -> str:
    return posixpath.dirname(model_blob) + "/"


def resolve_location(location: str, model_blob: str, container_name: str, *, where: str | None = None) -> str:
    """The blob path a model.json partition `location` URL points to, whatever the host.

    Accepts https://<account>.blob|dfs.core.windows.net/<container>/<path> and emulator URLs
    http://host:port/<account>/<container>/<path>. The export folder of the model.json is looked
    for in the path first, so an export copied to another container still resolves. A path with
    a `.` or `..` segment (plain or percent-encoded) is refused: the HTTP stack would collapse it
    into another folder, or another container. `where` names the entity in errors.
    """
    where = where or model_blob
    parts = urlsplit(location.strip())
    path = unquote(parts.path if parts.scheme else location.strip()).lstrip("/")
    shown = urlunsplit(parts._replace(query="", fragment=""))  # a SAS token in the query stays out of errors
    if any(segment in (".", "..") for segment in _PATH_SEPARATORS.split(path)):
        raise SegmentError(
            f"{where}: partition location {shown} has a '.' or '..' path segment (plain or percent-encoded); "
            "a partition must be named by its own path"
        )
    folder = _export_folder(model_blob)
    index = ("/" + path).find("/" + folder)
    if index != -1:
        return path[index:]
    segments = path.split("/")
    for skip in (0, 1):  # <container>/<path> or, on an emulator, <account>/<container>/<path>
        if len(segments) > skip + 1 and segments[skip] == container_name:
            return "/".join(segments[skip + 1:])
    raise SegmentError(f"{where}: partition location {shown} is not in container {container_name!r} nor under {folder}")


_PATH_SEPARATORS = re.compile(r"[/\\]")  # a backslash is a slash to some URL parsers


def _csv_format(settings: dict, where: str) -> CsvFormat:
    if settings.get("$type", "CsvFormatSettings") != "CsvFormatSettings":
        raise SegmentError(f"{where}: fileFormatSettings $type {settings.get('$type')!r} is not CsvFormatSettings")
    quote_style = str(settings.get("quoteStyle", "QuoteStyle.Csv"))
    try:
        return CsvFormat(
            delimiter=settings.get("delimiter", ","),
            quote="" if quote_style.endswith("None") else '"',
            header=bool(settings.get("columnHeaders", False)),
            encoding=settings.get("encoding", "UTF-8"),
        )
    except (ValueError, TypeError) as err:
        raise SegmentError(f"{where}: {err}") from None


def _entities(doc: dict, model_blob: str) -> list[dict]:
    entities = doc.get("entities")
    if not isinstance(entities, list):
        raise SegmentError(f"{model_blob} has no entities list")
    return [e for e in entities if isinstance(e, dict)]


def _entity_columns(entity: dict, where: str) -> tuple[str, ...]:
    attributes = entity.get("attributes")
    if not isinstance(attributes, list) or not attributes:
        raise SegmentError(f"{where}: entity has no attributes (column names)")
    names = tuple(str(a.get("name", "")).strip() if isinstance(a, dict) else "" for a in attributes)
    if not all(names):
        raise SegmentError(f"{where}: an attribute has no name")
    return names


def _folder_time(path_in_export: str) -> datetime | None:
    m = _CI_FOLDER.match(path_in_export)
    if not m:
        return None
    hm = m["hm"]
    try:
        return datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(hm[:2]), int(hm[2:]), tzinfo=timezone.utc)
    except ValueError:
        return None


def _partition_order(blob: str) -> tuple[int, str]:
    m = _PARTITION_NUMBER.search(blob)
    return (int(m.group(1)) if m else 0, blob)


def _ci_segment(container: ContainerClient, model_blob: str, model_time: datetime, entity: dict) -> Segment:
    """The current version of one entity: the newest folder model.json lists, every partition present."""
    name = str(entity.get("name", "")).strip()
    where = f"{model_blob}, entity {name!r}"
    if not name:
        raise SegmentError(f"{model_blob}: an entity has no name")
    columns = _entity_columns(entity, where)
    listed = entity.get("partitions")
    if not isinstance(listed, list) or not listed:
        raise SegmentError(f"{where}: lists no partitions")
    folder = _export_folder(model_blob)
    by_folder: dict[str, list[_ListedPartition]] = {}
    for item in listed:
        if not isinstance(item, dict) or not item.get("location"):
            raise SegmentError(f"{where}: a partition has no location")
        blob = resolve_location(str(item["location"]), model_blob, container.container_name, where=where)
        fmt = _csv_format(item.get("fileFormatSettings") or {}, f"{where}, partition {blob}")
        by_folder.setdefault(posixpath.dirname(blob), []).append(_ListedPartition(blob, fmt))

    def folder_time(path: str) -> datetime:
        relative = path[len(folder):] + "/x" if path.startswith(folder) else ""
        return _folder_time(relative) or model_time

    newest = max(by_folder, key=lambda path: (folder_time(path), path))
    wanted = sorted(by_folder[newest], key=lambda p: _partition_order(p.blob))
    formats = {p.format for p in wanted}
    if len(formats) > 1:
        raise SegmentError(f"{where}: partitions in {newest}/ have different fileFormatSettings")
    present = {b.name: b for b in container.list_blobs(name_starts_with=newest + "/")}
    missing = [p.blob for p in wanted if p.blob not in present]
    if missing:
        raise SegmentError(
            f"{where}: partition(s) listed in model.json but absent from the container: {', '.join(missing)}"
        )
    partitions = tuple(Partition(p.blob, present[p.blob].etag, present[p.blob].size) for p in wanted)
    return Segment(name, LAYOUT_CI, columns, folder_time(newest), partitions, formats.pop(), model_blob)


def _model_blobs(container: ContainerClient) -> list:
    """Every <CustomerInsights_id>/<ExportName>/model.json (blob properties)."""
    found = []
    for top in container.walk_blobs(delimiter="/"):
        if top.name.startswith(CI_PREFIX) and top.name.endswith("/"):
            for export in container.walk_blobs(name_starts_with=top.name, delimiter="/"):
                if export.name.endswith("/"):
                    for blob in container.list_blobs(name_starts_with=export.name + MODEL_JSON):
                        if blob.name == export.name + MODEL_JSON:
                            found.append(blob)
    return found


def _ci_segments(container: ContainerClient, errors: list[SegmentError] | None, only: str | None = None):
    """Each entity's current version. A broken model.json goes to `errors` (raises without it); a
    broken entity too, unless it is the one asked for (`only`), which raises."""
    for model in _model_blobs(container):
        try:
            doc = _read_json(container, model.name)
            entities = _entities(doc, model.name)
        except SegmentError as err:
            if errors is None:
                raise
            errors.append(err)
            continue
        for entity in entities:
            if only is not None and str(entity.get("name", "")).strip().lower() != only.lower():
                continue
            try:
                yield _ci_segment(container, model.name, model.last_modified, entity)
            except SegmentError as err:
                if errors is None or only is not None:
                    raise
                errors.append(err)


# ---------------------------------------------------------------- plain layout


def _plain_header(container: ContainerClient, blob, fmt: CsvFormat) -> tuple[str, ...]:
    scanner = CsvScanner(_blob_reader(container, blob.name, blob.etag), blob.size, fmt, block_bytes=64 * 1024)
    try:
        _check_text(scanner, fmt)
        header = scanner.header()
    except CsvScanError as err:
        raise SegmentError(f"{blob.name}: {err}") from None
    columns = tuple(name.strip() for name in header)
    if not any(columns):
        raise SegmentError(f"{blob.name}: the header row names no columns")
    return columns


def _plain_segment(container: ContainerClient, name: str, source: str, blobs: list) -> Segment:
    fmt = CsvFormat(header=True)
    blobs = sorted(blobs, key=lambda b: b.name)
    columns = _plain_header(container, blobs[0], fmt)
    partitions = tuple(Partition(b.name, b.etag, b.size) for b in blobs)
    updated = max(b.last_modified for b in blobs)
    return Segment(name, LAYOUT_PLAIN, columns, updated, partitions, fmt, source)


def _is_csv(name: str) -> bool:
    return name.lower().endswith(".csv")


def _plain_segments(container: ContainerClient, errors: list[SegmentError] | None, only: str | None = None):
    for item in container.walk_blobs(delimiter="/"):
        is_folder = item.name.endswith("/")
        if item.name.startswith(CI_PREFIX) or not (is_folder or _is_csv(item.name)):
            continue
        name = item.name[:-1] if is_folder else item.name[:-4]
        if only is not None and name.lower() != only.lower():
            continue
        blobs = [b for b in container.list_blobs(name_starts_with=item.name) if _is_csv(b.name)] if is_folder else [item]
        if not blobs:
            continue
        try:
            yield _plain_segment(container, name, item.name, blobs)
        except SegmentError as err:
            if errors is None:
                raise
            errors.append(err)


# ---------------------------------------------------------------- finding segments


def list_segments(container: ContainerClient, *, errors: list[SegmentError] | None = None) -> list[Segment]:
    """Every segment in the container (each CI entity's current version, each plain CSV/folder).

    With `errors` given, a broken export is reported there and the others are still listed;
    without, the first problem raises.
    """
    found = list(_ci_segments(container, errors)) + list(_plain_segments(container, errors))
    return sorted(found, key=lambda s: (s.name.lower(), s.updated_at))


def get_segment(container: ContainerClient, name: str) -> Segment:
    """The newest complete version of a segment (name matched case-insensitively)."""
    unreadable: list[SegmentError] = []  # other exports' broken model.json must not hide this one
    found = list(_ci_segments(container, unreadable, only=name)) + list(_plain_segments(container, None, only=name))
    if found:
        return max(found, key=lambda s: s.updated_at)
    message = _not_found_message(container, name)
    if unreadable:
        message += "; unreadable exports: " + "; ".join(str(e) for e in unreadable)
    raise SegmentNotFoundError(message)


def _not_found_message(container: ContainerClient, name: str) -> str:
    """Say why: partitions written for a table that no model.json lists are an incomplete export."""
    for model in _model_blobs(container):
        folder = _export_folder(model.name)
        table_folder = f"{folder}{name}/"
        if any(True for _ in container.list_blobs(name_starts_with=table_folder, results_per_page=1)):
            try:
                names = [str(e.get("name")) for e in _entities(_read_json(container, model.name), model.name)]
            except SegmentError as err:
                return f"segment {name!r}: partitions exist under {table_folder} but {err}"
            return (
                f"segment {name!r}: {model.name} has no entity {name!r} (it lists: {', '.join(names) or 'none'}); "
                f"partitions exist under {table_folder}, so that export is incomplete or model.json is stale"
            )
    for top in container.walk_blobs(delimiter="/"):
        if top.name.startswith(CI_PREFIX) and top.name.endswith("/"):
            for export in container.walk_blobs(name_starts_with=top.name, delimiter="/"):
                prefix = f"{export.name}{name}/"
                if export.name.endswith("/") and any(True for _ in container.list_blobs(name_starts_with=prefix)):
                    return f"segment {name!r}: partitions exist under {prefix} but {export.name}{MODEL_JSON} is missing"
    return (
        f"segment {name!r} not found in container {container.container_name!r} "
        f"(neither a Customer Insights model.json entity nor {name}.csv nor {name}/*.csv)"
    )


def segments_affected_by_blob(container: ContainerClient, blob_path: str) -> list[str]:
    """Segments a just-written blob changes: a model.json -> its entities, a plain CSV -> its segment.

    CI partitions return [] (model.json is written after them and is the signal), as do other blobs.
    """
    path = blob_path.lstrip("/")
    parts = path.split("/")
    if parts[0].startswith(CI_PREFIX):
        if len(parts) == 3 and parts[2] == MODEL_JSON:
            try:
                doc = _read_json(container, path)
                return [str(e.get("name")) for e in _entities(doc, path) if e.get("name")]
            except SegmentError:
                return []
        return []
    if not _is_csv(path):
        return []
    return [path[:-4]] if len(parts) == 1 else [parts[0]]


# ---------------------------------------------------------------- planning and reading


def _scanner(container: ContainerClient, segment: Segment, partition: Partition,
             executor: ThreadPoolExecutor | None = None, **options) -> CsvScanner:
    read = _blob_reader(container, partition.blob, partition.etag)
    if executor is not None:
        read = _ReadAhead(read, executor)
    return CsvScanner(read, partition.size, segment.format, **options)


def _check_header(segment: Segment, partition: Partition, header: list[str] | None) -> None:
    if header is None:
        return
    got = tuple(h.strip() for h in header)
    if tuple(c.lower() for c in got) != tuple(c.lower() for c in segment.columns):
        raise SegmentError(
            f"{partition.blob}: header row {list(got)} differs from the segment's columns {list(segment.columns)}"
        )


def plan_chunks(container: ContainerClient, segment: Segment, rows_per_chunk: int, **options) -> Iterator[Chunk]:
    """Chunks of `rows_per_chunk` records over all partitions, in order; one streaming pass each.

    Raises SegmentError naming the blob (and row) for an empty export, a broken header, a row
    longer than the record limit, or a blob replaced while planning.
    """
    if rows_per_chunk < 1:
        raise ValueError("rows_per_chunk must be at least 1")
    if segment.partitions and all(p.size == 0 for p in segment.partitions):
        names = ", ".join(p.blob for p in segment.partitions)
        raise SegmentError(
            f"segment {segment.name!r}: every partition is empty (0 bytes: {names}); "
            "refusing to read that as a segment without members"
        )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as executor:
        for partition in segment.partitions:
            yield from _plan_partition(container, segment, partition, rows_per_chunk, executor, options)


def _plan_partition(container: ContainerClient, segment: Segment, partition: Partition, rows_per_chunk: int,
                    executor: ThreadPoolExecutor, options: dict) -> Iterator[Chunk]:
    if partition.size == 0 and not segment.format.header:
        return  # an empty partition beside non-empty ones: a split with nothing in it
    scanner = _scanner(container, segment, partition, executor, **options)
    try:
        _check_text(scanner, segment.format)
        _check_header(segment, partition, scanner.header())
        for span in scanner.chunks(rows_per_chunk):
            chunk = Chunk(
                segment.name, partition.blob, partition.etag, span.start, span.end, span.first_row,
                span.row_count, segment.columns, segment.format,
            )
            if span.first_row == 1:
                check_chunk_size(chunk)
            yield chunk
    except CsvScanError as err:
        raise SegmentError(f"{partition.blob}: {err}") from None


def _check_text(scanner: CsvScanner, fmt: CsvFormat) -> None:
    """A file in another encoding fails as a whole, early; a stray bad byte later is a row reject."""
    problem = scanner.encoding_problem_at_start()
    if problem:
        raise CsvScanError(problem)


def check_chunk_size(chunk: Chunk) -> None:
    """A chunk must fit a queue message; huge column lists would not."""
    size = len(json.dumps(chunk.to_dict(), separators=(",", ":")).encode())
    if size > MAX_CHUNK_JSON_BYTES:
        raise SegmentError(
            f"segment {chunk.segment!r}: a chunk description is {size} bytes, over {MAX_CHUNK_JSON_BYTES} "
            "(too many or too long column names for a queue message)"
        )


def read_chunk(container: ContainerClient, chunk: Chunk) -> Iterator[RawRow]:
    """The chunk's rows, read from exactly [start, end) of the blob version it was planned on."""
    data = _blob_reader(container, chunk.blob, chunk.etag)(chunk.start, chunk.end - chunk.start)
    if len(data) != chunk.end - chunk.start:
        raise SegmentChangedError(f"blob {chunk.blob}: expected bytes {chunk.start}-{chunk.end}, got {len(data)}")
    yield from rows_of(data, chunk)


def rows_of(data: bytes, chunk: Chunk) -> Iterator[RawRow]:
    """Rows of a chunk's bytes: fields, or a problem (wrong column count, undecodable bytes)."""
    width = len(chunk.columns)
    fast = chunk_fields(data, chunk.format, chunk.row_count)
    if fast is None or len(fast[0]) != chunk.row_count:
        return _careful_rows(data, chunk, width)
    fields, problems = fast
    first = chunk.first_row
    # The hot path, all in C: RawRow(number, fields, None) for every record; the few records of
    # the wrong width or with undecodable bytes are replaced afterwards.
    rows = list(map(_new_tuple, repeat(RawRow), zip(count(first), fields, repeat(None))))
    widths = list(map(len, fields))
    if widths.count(width) != len(widths):
        for index, found in enumerate(widths):
            if found != width:
                rows[index] = _wrong_width(first + index, fields[index], width)
    for index, problem in problems.items():
        rows[index] = RawRow(first + index, None, RowRejection(problem.reason, problem.detail))
    return iter(rows)


_new_tuple = tuple.__new__  # tuple.__new__(RawRow, (number, fields, problem)) is RawRow(...) without Python code


def _wrong_width(number: int, row: list[str], width: int) -> RawRow:
    what = "a blank line" if not row else f"{len(row)} fields"
    return RawRow(number, None, RowRejection(RejectReason.MALFORMED_ROW, f"{what}, the segment has {width} columns"))


def _careful_rows(data: bytes, chunk: Chunk, width: int) -> Iterator[RawRow]:
    number = chunk.first_row
    for item in iter_fields(data, chunk.format, chunk.row_count):
        if isinstance(item, RecordProblem):
            yield RawRow(number, None, RowRejection(item.reason, item.detail))
        elif len(item) != width:
            yield _wrong_width(number, item, width)
        else:
            yield RawRow(number, item, None)
        number += 1
    if number - chunk.first_row != chunk.row_count:
        raise SegmentError(
            f"{chunk.blob}: bytes {chunk.start}-{chunk.end} hold {number - chunk.first_row} rows, "
            f"the plan said {chunk.row_count}"
        )
