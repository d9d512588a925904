"""Blob access for segments: ranged reads of one blob version, read-ahead while planning, JSON
documents, and a CSV scanner over a partition."""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from .. import blobhttp
from ..csvscan import CsvFormat, CsvScanError, CsvScanner, ReadFn
from .model import SegmentChangedError, SegmentError


def blob_reader(container: ContainerClient, blob: str, etag: str) -> ReadFn:
    """Ranged reads of one blob version: a replaced or deleted blob raises SegmentChangedError."""
    reader = blobhttp.for_container(container)

    def read(offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            return reader.get(blob, etag=etag, offset=offset, length=length).data
        except ResourceModifiedError:
            raise SegmentChangedError(
                f"blob {blob} was replaced or deleted after it was planned (ETag {etag} no longer matches): "
                "start a new run to read the new version"
            ) from None
        except ResourceNotFoundError:
            raise SegmentChangedError(f"blob {blob} was deleted after it was planned") from None

    return read


class ReadAhead:
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


def read_json(container: ContainerClient, blob: str) -> dict:
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


def scanner(container: ContainerClient, blob: str, etag: str, size: int, fmt: CsvFormat,
            executor: ThreadPoolExecutor | None = None, **options) -> CsvScanner:
    """A scanner over one blob version; with an executor, the next block downloads during the scan."""
    read = blob_reader(container, blob, etag)
    if executor is not None:
        read = ReadAhead(read, executor)
    return CsvScanner(read, size, fmt, **options)


def check_text(scanner: CsvScanner) -> None:
    """A file in another encoding fails as a whole, early; a stray bad byte later is a row reject."""
    problem = scanner.encoding_problem_at_start()
    if problem:
        raise CsvScanError(problem)
