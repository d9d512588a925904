"""CSV formats: what can be scanned, and encodings by their many names."""
from __future__ import annotations

import pytest

from shared.csvscan import CsvFormat, canonical_encoding


@pytest.mark.parametrize("options,message", [
    ({"delimiter": ";;"}, r"delimiter ';;' must be one ASCII character other than CR/LF"),
    ({"delimiter": "\n"}, r"delimiter '\\n' must be one ASCII character"),
    ({"quote": ","}, r"quote and delimiter must differ"),
    ({"encoding": "utf-16"}, r"encoding 'utf-16' is not supported"),
])
def test_a_format_that_cannot_be_scanned_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        CsvFormat(**options)


def test_encodings_by_their_names():
    assert [canonical_encoding(name) for name in ("UTF-8", "utf_8_sig", "ISO-8859-1", "Windows-1252", "US-ASCII")] == [
        "utf-8", "utf-8", "latin-1", "cp1252", "ascii"]
    assert canonical_encoding("UTF-16") is None and canonical_encoding("no-such-codec") is None


def test_a_format_travels_as_a_dict():
    fmt = CsvFormat(delimiter=";", quote="", header=False, encoding="cp1252")
    assert CsvFormat.from_dict(fmt.to_dict()) == fmt
