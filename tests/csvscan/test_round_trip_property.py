"""Property: for any chunk size, the chunks' records are exactly a whole-file `csv` parse, in order."""
from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, given, settings, strategies as st

from shared.csvscan import CsvFormat, iter_fields, scan_bytes

# Characters that make CSV hard: the delimiter, the quote, CR, LF, CRLF, a BOM look-alike, non-ASCII.
HOSTILE = st.sampled_from([",", '"', "\r", "\n", "\r\n", ";", " ", "é", "\ufeff", "x", "ab", '""'])
FIELD = st.lists(HOSTILE, max_size=6).map("".join)


def render_field(value: str, delimiter: str, force_quote: bool) -> str:
    # Quote whenever csv would need it (and sometimes when not): a bare CR/quote/delimiter is never
    # written unquoted, as every CSV writer does.
    if force_quote or any(c in value for c in (delimiter, '"', "\r", "\n")) or value == "":
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def csv_documents(draw):
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(FIELD, min_size=width, max_size=width), min_size=1, max_size=12))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    quote_all = draw(st.booleans())
    lines = [delimiter.join(render_field(v, delimiter, quote_all) for v in row) for row in rows]
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    bom = draw(st.booleans())
    data = ("\ufeff" if bom else "").encode() + text.encode("utf-8")
    if not bom:  # a leading U+FEFF is a byte-order mark whoever wrote it
        text = text.removeprefix("\ufeff")
    return data, CsvFormat(delimiter=delimiter, header=False), text


# Densely quoted data, as Customer Insights writes it (every field quoted), where most records share
# one layout of quotes and delimiters and the planner recognises runs of them without the grammar.
# Among them, fields of the same layout that are not plain quoted fields (junk after the closing
# quote, quotes inside an unquoted field) and fields that change the layout (quote, delimiter, LF
# or CRLF inside; an empty record; one column more or less).
PLAIN = st.text(alphabet="xé ", max_size=60).map(lambda value: f'"{value}"')  # lines of varied lengths
ODD_BUT_SAME_LAYOUT = st.sampled_from(['"x"y', ' "y"', 'a"b"'])
LAYOUT_CHANGING = st.sampled_from(['"a""b"', '"x"""y', '"a,b"', '"a\nb"', '"a\r\nb"', '"\n"', '","', '""""', 'x'])


@st.composite
def densely_quoted_documents(draw):
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    width = draw(st.integers(1, 4))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    odd_share = draw(st.sampled_from([0.0, 0.02, 0.1, 0.5]))  # share of fields that are not PLAIN
    other_width_share = draw(st.sampled_from([0.0, 0.05, 0.3]))
    rng = draw(st.randoms(use_true_random=False))  # weighted choices (st.one_of does not weight)

    def field() -> str:
        if rng.random() >= odd_share:
            return draw(PLAIN)
        return draw(ODD_BUT_SAME_LAYOUT if rng.random() < 0.5 else LAYOUT_CHANGING)

    def row() -> list[str]:
        if rng.random() < other_width_share:
            return [draw(PLAIN) for _ in range(rng.choice([0, width - 1, width + 1]))]
        return [field() for _ in range(width)]

    rows = [row() for _ in range(draw(st.integers(1, 60)))]
    lines = (delimiter.join(value.replace(",", delimiter) for value in fields) for fields in rows)
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    return text.encode("utf-8"), CsvFormat(delimiter=delimiter, header=False), text


def reference_rows(text: str, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=csv_documents(), rows_per_chunk=st.integers(1, 7), block=st.integers(1, 64))
def test_chunks_cover_every_row_once_in_order(doc, rows_per_chunk, block):
    assert_chunks_equal_a_whole_file_parse(doc, rows_per_chunk, block)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=densely_quoted_documents(), rows_per_chunk=st.integers(1, 30), block=st.integers(1, 2048))
def test_densely_quoted_chunks_cover_every_row_once_in_order(doc, rows_per_chunk, block):
    assert_chunks_equal_a_whole_file_parse(doc, rows_per_chunk, block)


def assert_chunks_equal_a_whole_file_parse(doc, rows_per_chunk, block):
    data, fmt, text = doc
    _, spans = scan_bytes(data, fmt, rows_per_chunk, block_bytes=block)
    got: list[list[str]] = []
    position = spans[0].start if spans else len(data)
    for number, span in enumerate(spans):
        assert span.start == position, "chunks must be contiguous"
        assert span.first_row == len(got) + 1
        assert 1 <= span.row_count <= rows_per_chunk
        rows = list(iter_fields(data[span.start:span.end], fmt, span.row_count))
        assert len(rows) == span.row_count
        got.extend(rows)
        position = span.end
    assert position == len(data)
    assert got == reference_rows(text, fmt.delimiter)
