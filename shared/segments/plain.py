"""The plain layout: `<SegmentName>.csv`, or every `*.csv` under `<SegmentName>/`, each with the
same header row, UTF-8."""
from __future__ import annotations

from azure.storage.blob import ContainerClient

from ..csvscan import CsvFormat, CsvScanError
from .blobs import check_text, scanner
from .customer_insights import CI_PREFIX
from .model import LAYOUT_PLAIN, Partition, Segment, SegmentError


def _plain_header(container: ContainerClient, blob, fmt: CsvFormat) -> tuple[str, ...]:
    header_scanner = scanner(container, blob.name, blob.etag, blob.size, fmt, block_bytes=64 * 1024)
    try:
        check_text(header_scanner)
        header = header_scanner.header()
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


def is_csv(name: str) -> bool:
    return name.lower().endswith(".csv")


def plain_segments(container: ContainerClient, errors: list[SegmentError] | None, only: str | None = None):
    for item in container.walk_blobs(delimiter="/"):
        is_folder = item.name.endswith("/")
        if item.name.startswith(CI_PREFIX) or not (is_folder or is_csv(item.name)):
            continue
        name = item.name[:-1] if is_folder else item.name[:-4]
        if only is not None and name.lower() != only.lower():
            continue
        blobs = [b for b in container.list_blobs(name_starts_with=item.name) if is_csv(b.name)] if is_folder else [item]
        if not blobs:
            continue
        try:
            yield _plain_segment(container, name, item.name, blobs)
        except SegmentError as err:
            if errors is None:
                raise
            errors.append(err)
