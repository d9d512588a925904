"""Realistic Customer Insights exports for tests, the bench and `make run`.

`generate_profiles` describes a segment lazily: row i is computed from (seed, i) whenever it is
needed, so a 1,000,000-row set costs no memory and streams to storage block by block. Every row
knows its expected outcome (the normalised email it must be sent as, or the reject reason), so
tests can assert exactly.

    python -m tools.sample_export --rows 1000 --out sample.csv     # a plain CSV on disk
"""
from __future__ import annotations

import argparse
import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Iterator

from azure.storage.blob import BlobBlock, ContainerClient

from shared.rejects import RejectReason

CI_COLUMNS = (
    "CustomerId", "FirstName", "LastName", "PrimaryEmail", "Address1", "Country", "State", "City",
    "PostCode", "PhoneNumber", "LifetimeValue", "LastPurchaseDate",
)
DEFAULT_MAPPING = {
    "email": "PrimaryEmail", "firstName": "FirstName", "lastName": "LastName", "address": "Address1",
    "country": "Country", "state": "State", "city": "City", "postalCode": "PostCode",
}
# Columns a profile set carries beyond CI_COLUMNS with custom_fields=True, and how they map: custom
# properties (LifetimeValue and LastPurchaseDate are in CI_COLUMNS already), birthdate and gender.
CUSTOM_COLUMNS = ("LoyaltyTier", "BirthDate", "Gender", "PreferredStores")
CUSTOM_PROPERTIES_MAPPING = {
    "loyalty_tier": {"column": "LoyaltyTier", "type": "string"},
    "lifetime_value": {"column": "LifetimeValue", "type": "number"},
    "last_order_date": {"column": "LastPurchaseDate", "type": "date"},
    "preferred_stores": {"column": "PreferredStores", "type": "stringList", "separator": ";"},
}
EXTENDED_MAPPING = {**DEFAULT_MAPPING, "birthdate": "BirthDate", "gender": "Gender",
                    "customProperties": CUSTOM_PROPERTIES_MAPPING}
BLOCK_BYTES = 4 * 1024 * 1024

_FIRST = ("Jane", "John", "Aistė", "Zoë", "Mohammed", "Olga", "José", "Wei", "Priya", "Liam", "Emma", "Noah")
_LAST = ("Doe", "Smith", "Müller", "Kowalski", "García", "Jonaitis", "Nguyen", "O'Brien", "Brown", "Kim")
_STREETS = ("Main St", "Oak Avenue", "Gedimino pr.", "Rue de Rivoli", "Baker Street", "Hauptstraße")
_PLACES = (  # (country as CI holds it: code or name, state, city, post code prefix)
    ("US", "California", "Los Angeles", "900"), ("GB", "", "London", "SW1A "), ("LT", "", "Vilnius", "LT-0"),
    ("Germany", "Bavaria", "München", "80"), ("fr", "", "Paris", "750"), ("United States", "New York", "New York", "100"),
    ("", "", "", ""),
)
_TIERS = ("Bronze", "Silver", "Gold", "Platinum", "")
_GENDERS = (("F", "f"), ("m", "m"), ("Female", "f"), ("MALE", "m"), ("Other", None), ("", None))
_STORES = ("Vilnius", "Kaunas", "Riga", "Tallinn", "Warsaw")
_INVALID_EMAILS = ("jane.doe", "jane@", "@example.com", "jane doe@example.com", "jane@@example.com", "jane@example")


class Kind(str, Enum):
    VALID = "valid"
    TRICKY = "tricky"  # valid, with quotes, delimiters and a line feed inside a field
    DUPLICATE = "duplicate"
    MISSING_EMAIL = "missing_email"
    INVALID_EMAIL = "invalid_email"
    WRONG_COLUMNS = "wrong_columns"
    UNDECODABLE = "undecodable"
    FIELD_TOO_LONG = "field_too_long"


_BAD_KINDS = (Kind.MISSING_EMAIL, Kind.INVALID_EMAIL, Kind.WRONG_COLUMNS, Kind.UNDECODABLE, Kind.FIELD_TOO_LONG)
_REASON = {
    Kind.DUPLICATE: RejectReason.DUPLICATE, Kind.MISSING_EMAIL: RejectReason.MISSING_EMAIL,
    Kind.INVALID_EMAIL: RejectReason.INVALID_EMAIL, Kind.WRONG_COLUMNS: RejectReason.MALFORMED_ROW,
    Kind.UNDECODABLE: RejectReason.UNDECODABLE, Kind.FIELD_TOO_LONG: RejectReason.FIELD_TOO_LONG,
}
_MASK = (1 << 64) - 1


def _mix(seed: int, i: int) -> int:
    """splitmix64 of (seed, i): a cheap, well-spread pseudo-random number per row."""
    z = (seed * 0x9E3779B97F4A7C15 + (i + 1) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@dataclass(frozen=True)
class Expected:
    """What must become of data row `row` (1-based within the set)."""

    row: int
    kind: Kind
    email: str | None  # the normalised address it is sent as (or duplicates)
    reason: RejectReason | None  # None: sent

    @property
    def sent(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class ProfileSet:
    count: int
    seed: int = 0
    bad_share: float = 0.01
    duplicate_share: float = 0.005
    email_domain: str = "example.com"
    quote_all: bool = False
    tricky_share: float = 0.01
    columns: tuple[str, ...] = CI_COLUMNS
    custom_fields: bool = False  # also the CUSTOM_COLUMNS (columns is then CI_COLUMNS + CUSTOM_COLUMNS)
    renamed_share: float = 0.0  # valid rows whose first name changed since the day before (`renamed`)

    # ------------------------------------------------------------ per row

    def kind(self, i: int) -> Kind:
        """Kind of row i (0-based)."""
        u = (_mix(self.seed, i) >> 11) / float(1 << 53)
        if u < self.bad_share:
            return _BAD_KINDS[int(u / self.bad_share * len(_BAD_KINDS)) % len(_BAD_KINDS)]
        u -= self.bad_share
        if u < self.duplicate_share and i > 0 and self._original_of(i) is not None:
            return Kind.DUPLICATE
        return Kind.TRICKY if (_mix(self.seed + 1, i) % 10_000) < self.tricky_share * 10_000 else Kind.VALID

    def _original_of(self, i: int) -> int | None:
        """The earlier valid row a duplicate row repeats."""
        j = i - 1 - _mix(self.seed + 2, i) % min(i, 1000)
        while j >= 0:
            if (_mix(self.seed, j) >> 11) / float(1 << 53) >= self.bad_share + self.duplicate_share:
                return j
            j -= 1
        return None

    def _email(self, i: int) -> str:
        r = _mix(self.seed, i)
        first, last = _FIRST[r % len(_FIRST)], _LAST[(r >> 8) % len(_LAST)]
        local = f"{first}.{last}".encode("ascii", "ignore").decode().replace("'", "")
        return f"{local}.{self.seed}-{i}@{self.email_domain}"

    def renamed(self, i: int) -> bool:
        """Whether valid row i carries another first name than it did before (same person, same email)."""
        return (bool(self.renamed_share) and _mix(self.seed + 5, i) % 10_000 < self.renamed_share * 10_000
                and self.kind(i) in (Kind.VALID, Kind.TRICKY))

    def expected(self, i: int) -> Expected:
        kind = self.kind(i)
        if kind in (Kind.VALID, Kind.TRICKY):
            return Expected(i + 1, kind, self._email(i).lower(), None)
        if kind is Kind.DUPLICATE:
            return Expected(i + 1, kind, self._email(self._original_of(i)).lower(), RejectReason.DUPLICATE)
        return Expected(i + 1, kind, None, _REASON[kind])

    def fields(self, i: int) -> list[str]:
        """The row's values (text; an undecodable row is made bytes-level by `record`)."""
        r = _mix(self.seed + 3, i)
        kind = self.kind(i)
        first, last = _FIRST[_mix(self.seed, i) % len(_FIRST)], _LAST[(_mix(self.seed, i) >> 8) % len(_LAST)]
        if self.renamed(i):
            first = _FIRST[(_mix(self.seed, i) + 1) % len(_FIRST)]
        country, state, city, post = _PLACES[r % len(_PLACES)]
        email = self._email(i)
        if kind is Kind.DUPLICATE:
            email = "  " + self._email(self._original_of(i)).upper() + " "  # same person, other spelling
        elif kind is Kind.MISSING_EMAIL:
            email = " " if r & 1 else ""
        elif kind is Kind.INVALID_EMAIL:
            email = _INVALID_EMAILS[r % len(_INVALID_EMAILS)]
        address = f"{(r >> 16) % 999 + 1} {_STREETS[(r >> 8) % len(_STREETS)]}"
        if kind is Kind.TRICKY:
            address = f'{address}, "Apt {r % 40}"\nBuilding B'
        if kind is Kind.FIELD_TOO_LONG:
            first = "X" * 1500
        values = [
            f"{r:016x}-{i:08d}", first, last, email, address, country, state, city,
            f"{post}{(r >> 24) % 900 + 100}" if post else "", f"+1555{(r >> 32) % 10_000_000:07d}",
            f"{(r >> 40) % 100_000 / 100:.2f}", f"2024-{(r >> 4) % 12 + 1:02d}-{(r >> 9) % 28 + 1:02d}",
        ]
        if self.custom_fields:
            values += self._custom_values(i)
        if kind is Kind.WRONG_COLUMNS:
            values = values[:-1] if r & 2 else values + ["extra"]
        return values

    def _custom_parts(self, i: int) -> tuple[str, tuple[int, int, int] | None, int, int, tuple[str, ...]]:
        """(tier, birth date or None, birthdate format, gender index, stores) of row i."""
        r = _mix(self.seed + 4, i)
        birth = (1940 + r % 66, (r >> 10) % 12 + 1, (r >> 14) % 28 + 1) if (r >> 19) % 8 else None
        stores = tuple(_STORES[(r >> (25 + 3 * k)) % len(_STORES)] for k in range((r >> 22) % 4))
        return _TIERS[(r >> 7) % len(_TIERS)], birth, (r >> 40) % 3, (r >> 44) % len(_GENDERS), stores

    def _custom_values(self, i: int) -> list[str]:
        tier, birth, form, gender, stores = self._custom_parts(i)
        if birth is None:
            birthdate = ""
        else:
            year, month, day = birth
            birthdate = (f"{year}-{month:02d}-{day:02d}", f"{month}/{day}/{year}",
                         f"{month}/{day}/{year} 12:00:00 AM")[form]
        return [tier, birthdate, _GENDERS[gender][0], "; ".join(stores)]

    def expected_fields(self, i: int) -> dict:
        """What a sent row's custom fields become with EXTENDED_MAPPING: {"birthdate", "gender",
        "customProperties"}, each left out when empty (computed from the generator's own parts)."""
        r = _mix(self.seed + 3, i)
        tier, birth, _, gender, stores = self._custom_parts(i)
        cents = (r >> 40) % 100_000
        properties = {"loyalty_tier": tier, "lifetime_value": cents / 100,
                      "last_order_date": f"2024-{(r >> 4) % 12 + 1:02d}-{(r >> 9) % 28 + 1:02d}",
                      "preferred_stores": list(stores)}
        found: dict = {"customProperties": {k: v for k, v in properties.items() if v not in ("", [])}}
        if birth is not None:
            found["birthdate"] = f"{birth[0]}-{birth[1]:02d}-{birth[2]:02d}"
        if _GENDERS[gender][1] is not None:
            found["gender"] = _GENDERS[gender][1]
        return found

    def record(self, i: int) -> bytes:
        """Row i as one CSV record (CRLF-terminated) in UTF-8."""
        quote_all = self.quote_all
        line = ",".join(_quote(v, quote_all) for v in self.fields(i)).encode("utf-8") + b"\r\n"
        if self.kind(i) is Kind.UNDECODABLE:
            line = line.replace(b",", b",\xff\xfe", 1)  # bytes no UTF-8 decoder accepts, in a name
        return line

    # ------------------------------------------------------------ ranges

    def expectations(self, start: int = 0, stop: int | None = None) -> Iterator[Expected]:
        for i in range(start, self.count if stop is None else stop):
            yield self.expected(i)

    def header_line(self) -> bytes:
        return (",".join(_quote(c, self.quote_all) for c in self.columns) + "\r\n").encode()

    def blocks(self, start: int = 0, stop: int | None = None, *, header: bool = False,
               block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
        """Rows [start, stop) as CSV, in blocks of about block_bytes."""
        stop = self.count if stop is None else stop
        parts: list[bytes] = [self.header_line()] if header else []
        size = sum(map(len, parts))
        for i in range(start, stop):
            line = self.record(i)
            parts.append(line)
            size += len(line)
            if size >= block_bytes:
                yield b"".join(parts)
                parts, size = [], 0
        if parts or (header and start == stop):
            yield b"".join(parts)

    def csv_bytes(self, start: int = 0, stop: int | None = None, *, header: bool = False) -> bytes:
        return b"".join(self.blocks(start, stop, header=header))


def _quote(value: str, quote_all: bool) -> str:
    if quote_all or any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def generate_profiles(count: int, *, seed: int = 0, bad_share: float = 0.01, duplicate_share: float = 0.005,
                      email_domain: str = "example.com", quote_all: bool = False,
                      tricky_share: float = 0.01, custom_fields: bool = False,
                      renamed_share: float = 0.0) -> ProfileSet:
    """A lazily generated segment of `count` CI-like profiles with a known share of bad rows.

    tricky_share: valid rows whose address holds quotes, a comma and a line feed.
    quote_all: every field quoted (as some CDM writers do) instead of only where needed.
    custom_fields: also loyalty tier, birthdate (ISO, M/d/yyyy, with a time or empty), gender
    (m/f/male/female in any case, other or empty) and preferred stores (";"-separated), mapped by
    EXTENDED_MAPPING; the rows before these columns are the same as without them.
    renamed_share: valid rows with another first name (`ProfileSet.renamed`), e.g. the next day's export.
    """
    if count < 0 or not 0 <= bad_share + duplicate_share <= 1:
        raise ValueError("count must be >= 0 and bad_share + duplicate_share between 0 and 1")
    columns = CI_COLUMNS + CUSTOM_COLUMNS if custom_fields else CI_COLUMNS
    return ProfileSet(count, seed, bad_share, duplicate_share, email_domain, quote_all, tricky_share, columns,
                      custom_fields, renamed_share)


def partition_bounds(count: int, partitions: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of each partition: rows split evenly, in order."""
    return [(count * k // partitions, count * (k + 1) // partitions) for k in range(partitions)]


def upload_blocks(container: ContainerClient, blob: str, blocks: Iterator[bytes]) -> int:
    """Stream blocks into a block blob (stage + commit): memory stays one block. Returns bytes written."""
    client = container.get_blob_client(blob)
    ids, size = [], 0
    for number, block in enumerate(blocks):
        if not block:
            continue
        block_id = base64.b64encode(f"{number:08d}".encode()).decode()
        client.stage_block(block_id, block)
        ids.append(BlobBlock(block_id=block_id))
        size += len(block)
    client.commit_block_list(ids)
    return size


def _format_settings(header: bool) -> dict:
    return {
        "$type": "CsvFormatSettings", "columnHeaders": header, "delimiter": ",",
        "quoteStyle": "QuoteStyle.Csv", "csvStyle": "CsvStyle.QuoteAlways", "encoding": "UTF-8",
    }


def write_ci_export(container: ContainerClient, segments: dict[str, ProfileSet], *,
                    instance_id: str = "0f1e2d3c-4b5a-6978-8a9b-acbdcedf0011", export_name: str = "BlobExport",
                    partitions: int = 3, when: datetime | None = None, header: bool = False,
                    location_base: str | None = None, model_json: bool = True) -> list[str]:
    """Write a CI blob export: partitions under <Table>/<yyyy>/<MM>/<dd>/<HHmm>/, then model.json LAST.

    `location_base` is the URL prefix of partition locations (default: the container's URL; e.g.
    "https://acct.dfs.core.windows.net/<container>"). `model_json=False` leaves an export half
    written (partitions only), as CI does before it rewrites model.json.
    """
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    export = f"CustomerInsights_{instance_id}/{export_name}"
    base = (location_base or container.url).rstrip("/")
    written, entities = [], []
    for name, profiles in segments.items():
        folder = f"{export}/{name}/{when:%Y/%m/%d/%H%M}"
        listed = []
        for number, (start, stop) in enumerate(partition_bounds(profiles.count, partitions), 1):
            blob = f"{folder}/{name}_{number}.csv"
            upload_blocks(container, blob, profiles.blocks(start, stop, header=header))
            written.append(blob)
            listed.append({
                "name": f"{name}_{number}", "refreshTime": when.isoformat(), "location": f"{base}/{blob}",
                "fileFormatSettings": _format_settings(header),
            })
        entities.append({
            "$type": "LocalEntity", "name": name, "description": f"Segment {name}",
            "attributes": [{"name": c, "dataType": "string"} for c in profiles.columns], "partitions": listed,
        })
    if model_json:
        model = {"name": export_name, "version": "1.0", "modifiedTime": when.isoformat(), "entities": entities}
        blob = f"{export}/model.json"
        container.upload_blob(blob, json.dumps(model, indent=2).encode(), overwrite=True)
        written.append(blob)
    return written


def write_plain_segment(container: ContainerClient, name: str, profiles: ProfileSet, *, files: int = 1) -> str:
    """`<name>.csv` with a header row; with files > 1, `<name>/part-<n>.csv` each with the header.
    Returns the blob (or folder) path."""
    if files == 1:
        upload_blocks(container, f"{name}.csv", profiles.blocks(header=True))
        return f"{name}.csv"
    for number, (start, stop) in enumerate(partition_bounds(profiles.count, files), 1):
        upload_blocks(container, f"{name}/part-{number:04d}.csv", profiles.blocks(start, stop, header=True))
    return f"{name}/"


@dataclass(frozen=True)
class ProfileSlice:
    """Rows [first, first + count) of a larger set: segments cut from one population share people."""

    population: ProfileSet
    first: int
    count: int

    @property
    def columns(self) -> tuple[str, ...]:
        return self.population.columns

    def expected(self, i: int) -> Expected:
        found = self.population.expected(self.first + i)
        return Expected(i + 1, found.kind, found.email, found.reason)

    def fields(self, i: int) -> list[str]:
        return self.population.fields(self.first + i)

    def expected_fields(self, i: int) -> dict:
        return self.population.expected_fields(self.first + i)

    def blocks(self, start: int = 0, stop: int | None = None, *, header: bool = False,
               block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
        stop = self.count if stop is None else stop
        return self.population.blocks(self.first + start, self.first + stop, header=header, block_bytes=block_bytes)


def overlapping_segments(names: tuple[str, ...], population: ProfileSet, share: float = 0.6) -> dict[str, ProfileSlice]:
    """Cut `names` segments from `population`, each `share` of it, evenly offset so neighbours overlap."""
    size = int(population.count * share)
    step = (population.count - size) // max(1, len(names) - 1)
    return {name: ProfileSlice(population, k * step, size) for k, name in enumerate(names)}


@dataclass(frozen=True)
class NextDay:
    """How the next day's demo export differs from the first: first names changed, people who left
    the first segment (and so every segment), people who left the last segment only (they stay in an
    earlier one), and new people joining the last segment."""

    renamed_share: float = 0.015
    left_first: int = 150
    left_last: int = 100
    joined: int = 200


def demo_segments(profiles: int, names: tuple[str, ...], next_day: NextDay | None = None) -> dict[str, ProfileSlice]:
    """The `make run` segments: overlapping slices of one population of `profiles` people with some bad
    rows, carrying the custom columns. With `next_day`, the same people a day later: a share renamed,
    the first rows of the first and of the last segment gone, `joined` new people after the last."""
    if next_day is None:
        return overlapping_segments(names, generate_profiles(profiles, seed=7, bad_share=0.01, custom_fields=True))
    population = generate_profiles(profiles + next_day.joined, seed=7, bad_share=0.01, custom_fields=True,
                                   renamed_share=next_day.renamed_share)
    day_one = overlapping_segments(names, generate_profiles(profiles, seed=7))
    moved = {}
    for k, (name, piece) in enumerate(day_one.items()):
        first = piece.first + (next_day.left_first if k == 0 else 0) + (next_day.left_last if k == len(names) - 1 else 0)
        stop = piece.first + piece.count + (next_day.joined if k == len(names) - 1 else 0)
        moved[name] = ProfileSlice(population, first, stop - first)
    return moved


def write_demo_export(container: ContainerClient, profiles: int, names: tuple[str, ...], *,
                      map_custom_fields: bool = False, next_day: NextDay | None = None,
                      when: datetime | None = None) -> dict:
    """The sample `make run` exports (`demo_segments`), written as Customer Insights writes them (`when`:
    the export's time, default now). The mapping is DEFAULT_MAPPING, or EXTENDED_MAPPING (custom
    properties, birthdate, gender) with map_custom_fields=True. Returns the rows, the mapping and,
    for the next day, how many valid rows were renamed."""
    segments = demo_segments(profiles, names, next_day)
    write_ci_export(container, segments, partitions=3, when=when)
    mapping = EXTENDED_MAPPING if map_custom_fields else DEFAULT_MAPPING
    written = {"rows": sum(s.count for s in segments.values()), "mapping": json.loads(json.dumps(mapping))}
    if next_day is not None:
        population = next(iter(segments.values())).population
        rows = set().union(*(range(s.first, s.first + s.count) for s in segments.values()))
        written["renamed"] = sum(1 for i in rows if population.renamed(i))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a sample segment as a plain CSV file.")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--custom-fields", action="store_true", help="also loyalty tier, birthdate, gender, stores")
    args = parser.parse_args()
    with open(args.out, "wb") as out:
        for block in generate_profiles(args.rows, seed=args.seed, custom_fields=args.custom_fields).blocks(header=True):
            out.write(block)


if __name__ == "__main__":
    main()
