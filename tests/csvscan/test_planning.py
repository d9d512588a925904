"""Chunk planning over bytes in memory: where records end, and the errors that stop a partition."""
from __future__ import annotations

import pytest

from shared.csvscan import CsvFormat, CsvScanError, scan_bytes


def test_unclosed_quote_is_named_with_its_row():
    data = b'a,b\n"never closed,' + b"x" * 5000
    with pytest.raises(CsvScanError, match=r"row 2 \(starting at byte 4\) is longer than 1 KiB"):
        scan_bytes(data, CsvFormat(header=False), 10, block_bytes=512, max_record_bytes=1024)


def test_chunks_stop_early_at_the_byte_cap():
    data = b"".join(b"%d,%s\n" % (i, b"x" * 100) for i in range(50))
    _, spans = scan_bytes(data, CsvFormat(header=False), 1000, max_chunk_bytes=1000)
    assert [s.row_count for s in spans][:3] == [10, 10, 10] and sum(s.row_count for s in spans) == 50
