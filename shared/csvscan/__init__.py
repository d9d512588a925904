"""Byte-level CSV record scanning: record boundaries found in C (regex, bytes.find), not per character.

The grammar is the one Python's `csv` module reads (RFC 4180, tolerant): a quote opens a quoted
field only at the start of a field; inside it, a doubled quote is a literal quote and delimiters,
CR and LF are data; a quote anywhere else is a literal character. A record ends at an LF outside
quotes; a CR just before that LF belongs to the terminator (CRLF). The last record may lack its
LF. A lone CR outside quotes is data, not a line break (Customer Insights never writes old-Mac
line ends, and treating it as data keeps one rule for the planner and the reader).

The scanner works over a `read(offset, length) -> bytes` function, so the same code plans a blob
(ranged downloads) and a bytes object in tests. Memory is one block plus at most one record.
"""
from .fields import chunk_fields, decode_record, iter_fields, parse_record, split_records
from .format import SUPPORTED_ENCODINGS, CsvError, CsvFormat, CsvScanError, ReadFn, RecordProblem, canonical_encoding
from .grammar import strip_terminator
from .planning import DEFAULT_BLOCK_BYTES, MAX_CHUNK_BYTES, MAX_RECORD_BYTES, ChunkSpan, CsvScanner, scan_bytes

__all__ = [
    "DEFAULT_BLOCK_BYTES", "MAX_CHUNK_BYTES", "MAX_RECORD_BYTES", "SUPPORTED_ENCODINGS", "ChunkSpan", "CsvError",
    "CsvFormat", "CsvScanError", "CsvScanner", "ReadFn", "RecordProblem", "canonical_encoding", "chunk_fields",
    "decode_record", "iter_fields", "parse_record", "scan_bytes", "split_records", "strip_terminator",
]
