"""An export's sync state: every contact it delivered, as sorted fixed-width columns.

For contact i (in ascending order of `mapping.email_key`):
  keys[i]          the 64-bit email key
  fingerprints[i]  the fingerprint of the ContactRequest body last verified as sent (0: unknown)
  masks[i]         bit b set: the export verified adding `tags[b]` to the contact
  emails           the normalised address as sent (stored compressed; read only where needed)

In memory the three columns are `array`s (17 bytes a contact with up to 8 tags) and the emails stay
compressed, so a 1,000,000-contact state takes about 17 MB plus its compressed emails, and no Python
object exists per contact. A key is found by bisecting its bucket (the key's top bits) of `keys`.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Sequence

from . import codec
from ..mapping import email_key
from .errors import ChangeError, StateFormatError, TooManyTagsError
from .fingerprint import FINGERPRINT_SCHEME, NO_FINGERPRINT

MAX_TAGS = 64
MAX_EMAIL_BYTES = 0xFFFF
_MASK_TYPES = {1: "B", 2: "H", 4: "I", 8: "Q"}
assert all(array(t).itemsize == w for w, t in _MASK_TYPES.items()) and array("Q").itemsize == 8
KIND = "state"
_SECTIONS = ("keys", "fingerprints", "masks", "emailLengths", "emails")


def check_email(key: int, email: bytes) -> None:
    """An email the state can store: 1 to MAX_EMAIL_BYTES bytes (its length is a 16-bit column)."""
    if not 0 < len(email) <= MAX_EMAIL_BYTES:
        raise ChangeError(f"an email of {len(email)} bytes cannot be stored (key {key:#x})")


def mask_width(tag_count: int) -> int:
    """Bytes a tag mask needs for `tag_count` tags."""
    if tag_count > MAX_TAGS:
        raise TooManyTagsError(f"an export can own at most {MAX_TAGS} tags; this one would own {tag_count}")
    return next(w for w in (1, 2, 4, 8) if tag_count <= 8 * w)


def empty_masks(tag_count: int) -> array:
    return array(_MASK_TYPES[mask_width(tag_count)])


@dataclass(frozen=True)
class StateInfo:
    """What the header says about a state besides its columns."""

    tags: tuple[str, ...] = ()
    run_id: str = ""  # the run whose outcomes made this state ("" for none)
    written_at: str = ""
    last_full_at: str = ""  # when the last full run ended ("" for never)
    fingerprint_scheme: int = FINGERPRINT_SCHEME

    def to_dict(self) -> dict:
        return {"tags": list(self.tags), "runId": self.run_id, "writtenAt": self.written_at,
                "lastFullAt": self.last_full_at, "fingerprintScheme": self.fingerprint_scheme}

    @classmethod
    def from_dict(cls, header: dict) -> "StateInfo":
        tags = header.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags) or len(set(tags)) != len(tags):
            raise StateFormatError("the tag table must be a list of distinct non-empty names", where="header.tags")
        if len(tags) > MAX_TAGS:
            raise StateFormatError(f"{len(tags)} tags, at most {MAX_TAGS} fit a mask", where="header.tags")
        for key in ("runId", "writtenAt", "lastFullAt"):
            if not isinstance(header.get(key), str):
                raise StateFormatError(f"{key!r} must be text", where=f"header.{key}")
        scheme = header.get("fingerprintScheme")
        if not isinstance(scheme, int) or isinstance(scheme, bool):
            raise StateFormatError("must be an integer", where="header.fingerprintScheme")
        return cls(tuple(tags), header["runId"], header["writtenAt"], header["lastFullAt"], scheme)


class KeyIndex:
    """Where each key is: bucket starts over the top bits of the sorted keys, then a bisect."""

    def __init__(self, keys: array) -> None:
        bits = max(0, min(16, len(keys).bit_length() - 3))
        self.keys = keys
        self.shift = 64 - bits
        self.starts = array("I", (bisect_left(keys, bucket << self.shift) for bucket in range(1 << bits)))
        self.starts.append(len(keys))

    def find(self, key: int) -> int:
        """The position of `key`, or -1."""
        bucket = key >> self.shift
        hi = self.starts[bucket + 1]
        i = bisect_left(self.keys, key, self.starts[bucket], hi)
        return i if i < hi and self.keys[i] == key else -1


class SyncState:
    """The sorted columns of one export's state; see the module docstring."""

    def __init__(self, info: StateInfo, keys: array, fingerprints: array, masks: array,
                 email_lengths: array, emails: tuple[codec.Section, list[bytes]]) -> None:
        self.info = info
        self.keys, self.fingerprints, self.masks = keys, fingerprints, masks
        self.email_lengths = email_lengths
        self._emails = emails
        self._index: KeyIndex | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def empty(cls, info: StateInfo = StateInfo()) -> "SyncState":
        return cls.from_entries((), info)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, int, int]], info: StateInfo = StateInfo()) -> "SyncState":
        """A state of (email, fingerprint, mask) entries, in any order, one per email (tests, benchmarks)."""
        rows = sorted(((email_key(email), email, fp, mask) for email, fp, mask in entries), key=lambda r: r[0])
        builder = StateBuilder(info)
        for key, email, fp, mask in rows:
            builder.append(key, fp, mask, email.encode())
        return builder.finish()

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.info.tags

    def tag_bit(self, tag: str | None) -> int:
        """The mask bit of `tag` in this state (0 when the state has no such tag)."""
        return 1 << self.info.tags.index(tag) if tag in self.info.tags else 0

    @property
    def index(self) -> KeyIndex:
        if self._index is None:
            self._index = KeyIndex(self.keys)
        return self._index

    def find(self, key: int) -> int:
        return self.index.find(key)

    def emails_at(self, positions: Iterable[int]) -> Iterator[str]:
        """The emails at ascending `positions`, inflating the email column once, only as far as needed."""
        reader = EmailReader(self)
        for position in positions:
            yield reader.email_at(position)

    def iter_emails(self) -> Iterator[str]:
        return self.emails_at(range(len(self)))

    def email_reader(self) -> "EmailReader":
        return EmailReader(self)

    # ------------------------------------------------------------------ stored form

    def to_chunks(self) -> list[bytes]:
        """The stored form (see `codec`), as byte strings to write in order."""
        width = self.masks.itemsize
        if width != mask_width(len(self.info.tags)):
            raise StateFormatError(f"mask width {width} does not fit {len(self.info.tags)} tags", where="masks")
        sections = [
            codec.pack_section("keys", codec.column_bytes(self.keys), shuffle_width=8, level=1),
            codec.pack_section("fingerprints", codec.column_bytes(self.fingerprints), codec="raw"),
            codec.pack_section("masks", codec.column_bytes(self.masks), shuffle_width=width),
            codec.pack_section("emailLengths", codec.column_bytes(self.email_lengths), shuffle_width=2),
            self._emails,
        ]
        header = {"kind": KIND, "count": len(self), "maskBytes": width, **self.info.to_dict()}
        return codec.frame(header, sections)

    def to_bytes(self) -> bytes:
        return b"".join(self.to_chunks())

    @classmethod
    def from_bytes(cls, data: bytes) -> "SyncState":
        return cls.read([data])

    @classmethod
    def read(cls, chunks: Iterable[bytes]) -> "SyncState":
        """Decode a stored state from its bytes (e.g. a blob download's chunks), in bounded memory."""
        source = codec.ByteSource(chunks)
        header, sections = _read_header(source)
        count = header.get("count")
        width = header.get("maskBytes")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise StateFormatError("'count' must be a non-negative integer", where="header.count")
        info = StateInfo.from_dict(header)
        if width != mask_width(len(info.tags)):
            raise StateFormatError(f"mask width {width!r} does not fit {len(info.tags)} tags", where="header.maskBytes")
        if tuple(s.name for s in sections) != _SECTIONS:
            raise StateFormatError(f"sections {[s.name for s in sections]}, expected {list(_SECTIONS)}",
                                   where="header.sections")
        widths = {"keys": 8, "fingerprints": 8, "masks": width, "emailLengths": 2}
        columns = {}
        for section in sections[:4]:
            if section.raw_size != count * widths[section.name]:
                raise StateFormatError(f"{section.raw_size} raw bytes for {count} contacts",
                                       where=f"section {section.name!r}")
            column = array("Q" if widths[section.name] == 8 else _MASK_TYPES[widths[section.name]])
            codec.fill_column(column, codec.unpack_section(section, source.read(section.size, f"section {section.name!r}")))
            columns[section.name] = column
        emails_section = sections[4]
        emails = source.read(emails_section.size, "section 'emails'")
        source.expect_end()
        keys, lengths = columns["keys"], columns["emailLengths"]
        if any(map(int.__ge__, keys, keys[1:])):
            raise StateFormatError("keys are not strictly ascending", where="section 'keys'")
        if columns["masks"] and max(columns["masks"]) >> len(info.tags):
            raise StateFormatError("a mask sets a bit beyond the tag table", where="section 'masks'")
        if sum(lengths) != emails_section.raw_size or (count and min(lengths) == 0):
            raise StateFormatError("email lengths do not add up to the email column", where="section 'emailLengths'")
        return cls(info, keys, columns["fingerprints"], columns["masks"], lengths,
                   (emails_section, [emails]))

    @staticmethod
    def read_info(chunks: Iterable[bytes]) -> StateInfo:
        """Only the header's facts (run, tags, dates), e.g. from the first bytes of a blob."""
        header, _ = _read_header(codec.ByteSource(chunks))
        return StateInfo.from_dict(header)

    def with_info(self, **changes) -> "SyncState":
        return SyncState(replace(self.info, **changes), self.keys, self.fingerprints, self.masks,
                         self.email_lengths, self._emails)

    @property
    def stored_emails(self) -> tuple[codec.Section, list[bytes]]:
        """The email column as stored: its section entry and compressed bytes."""
        return self._emails

    def __repr__(self) -> str:
        return f"SyncState({len(self)} contacts, tags={list(self.info.tags)}, run={self.info.run_id!r})"


def _read_header(source: codec.ByteSource) -> tuple[dict, list[codec.Section]]:
    _, header, sections = codec.read_header(source)
    if header.get("kind") != KIND:
        raise StateFormatError(f"a {header.get('kind')!r} blob, not a sync state", where="header.kind")
    return header, sections


class EmailReader:
    """Emails of a state in ascending positions, inflating the email column sequentially."""

    def __init__(self, state: SyncState) -> None:
        self._lengths = state.email_lengths
        self._inflater = codec.Inflater(*state.stored_emails)
        self._next = 0  # position of the next email not yet read or skipped

    def email_at(self, position: int) -> str:
        if position < self._next or position >= len(self._lengths):
            raise IndexError(f"email position {position} is behind the reader or past the end")
        self._inflater.skip(sum(self._lengths[self._next:position]))
        self._next = position + 1
        return self._inflater.read(self._lengths[position]).decode()

    def take(self, count: int) -> tuple[bytes, array]:
        """The next `count` emails' bytes, concatenated, with their lengths."""
        lengths = self._lengths[self._next:self._next + count]
        self._next += count
        return self._inflater.read(sum(lengths)), lengths

    def check_complete(self) -> None:
        self._inflater.check_complete()


class StateBuilder:
    """Appends contacts in strictly ascending key order and makes a `SyncState` of them."""

    def __init__(self, info: StateInfo, *, level: int = 3) -> None:
        self.info = info
        self.keys, self.fingerprints = array("Q"), array("Q")
        self.masks = empty_masks(len(info.tags))
        self.email_lengths = array("H")
        self._deflater = codec.Deflater(level)

    def append(self, key: int, fingerprint: int, mask: int, email: bytes) -> None:
        if self.keys and key <= self.keys[-1]:
            raise ChangeError(f"contacts must come in strictly ascending key order ({key:#x} after {self.keys[-1]:#x})")
        check_email(key, email)
        self.keys.append(key)
        self.fingerprints.append(fingerprint or NO_FINGERPRINT)
        self.masks.append(mask)
        self.email_lengths.append(len(email))
        self._deflater.add(email)

    def extend(self, keys: array, fingerprints: array, masks: Sequence[int], emails: bytes, lengths: array) -> None:
        """Append a run of contacts at once (already sorted, and after every key so far)."""
        if not keys:
            return
        if self.keys and keys[0] <= self.keys[-1]:
            raise ChangeError("contacts must come in strictly ascending key order")
        self.keys.extend(keys)
        self.fingerprints.extend(fingerprints)
        self.masks.extend(masks)
        self.email_lengths.extend(lengths)
        self._deflater.add(emails)

    def finish(self) -> SyncState:
        return SyncState(self.info, self.keys, self.fingerprints, self.masks, self.email_lengths,
                         self._deflater.finish("emails"))
