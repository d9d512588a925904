"""Segments in Blob Storage: Customer Insights exports (model.json + partitions) and plain CSVs.

A segment is read in three steps: `get_segment` finds its current version (partitions pinned by
ETag), `plan_chunks` cuts each partition into byte ranges of N records in one streaming pass, and
`read_chunk` (on a worker, from a queue message) reads one range back as rows.
"""
from ..csvscan import CsvFormat
from .chunks import plan_chunks, read_chunk, rows_of
from .customer_insights import resolve_location
from .listing import get_segment, list_segments, segments_affected_by_blob
from .model import (
    LAYOUT_CI, LAYOUT_PLAIN, Chunk, Partition, RawRow, Segment, SegmentChangedError, SegmentError,
    SegmentNotFoundError, check_chunk_size,
)

__all__ = [
    "LAYOUT_CI", "LAYOUT_PLAIN", "Chunk", "CsvFormat", "Partition", "RawRow", "Segment", "SegmentChangedError",
    "SegmentError", "SegmentNotFoundError", "check_chunk_size", "get_segment", "list_segments", "plan_chunks",
    "read_chunk", "resolve_location", "rows_of", "segments_affected_by_blob",
]
