"""Tests of shared/segments/, and what they share: the export folder and times the sample export
writes, and reading a whole segment back."""
from __future__ import annotations

from datetime import datetime, timezone

from shared.segments import plan_chunks, read_chunk

T1433 = datetime(2020, 8, 24, 14, 33, tzinfo=timezone.utc)
T1530 = datetime(2020, 8, 24, 15, 30, tzinfo=timezone.utc)
T1600 = datetime(2020, 8, 24, 16, 0, tzinfo=timezone.utc)
EXPORT = "CustomerInsights_0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011/BlobExport"  # tools.sample_export's default


def rows_of_segment(container, segment, rows_per_chunk=7):
    """Every row of the segment, through planning and reading as a run does."""
    return [row for chunk in plan_chunks(container, segment, rows_per_chunk) for row in read_chunk(container, chunk)]
