"""The Customer Insights layout: `CustomerInsights_<id>/<ExportName>/model.json` (CDM) and its
partitions `<Table>/<yyyy>/<MM>/<dd>/<HHmm>/<Table>_<n>.csv`. Each entity is a segment whose
current version is the newest folder model.json lists."""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit, urlunsplit

from azure.storage.blob import ContainerClient

from ..csvscan import CsvFormat
from .blobs import read_json
from .model import LAYOUT_CI, Partition, Segment, SegmentError

CI_PREFIX = "CustomerInsights_"
MODEL_JSON = "model.json"
# <Table>/<yyyy>/<MM>/<dd>/<HHmm>/<file> relative to the export folder
_CI_FOLDER = re.compile(r"^(?P<table>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<hm>\d{4})/[^/]+$")
_PARTITION_NUMBER = re.compile(r"_(\d+)\.csv$", re.IGNORECASE)


@dataclass(frozen=True)
class _ListedPartition:
    blob: str
    format: CsvFormat


def export_folder(model_blob: str) -> str:
    return posixpath.dirname(model_blob) + "/"


def resolve_location(location: str, model_blob: str, container_name: str, *, where: str | None = None) -> str:
    """The blob path a model.json partition `location` URL points to, whatever the host.

    Accepts https://<account>.blob|dfs.core.windows.net/<container>/<path> and emulator URLs
    http://host:port/<account>/<container>/<path>. The export folder of the model.json is looked
    for in the path first, so an export copied to another container still resolves. A path with
    a `.` or `..` segment (plain or percent-encoded) is refused: the HTTP stack would collapse it
    into another folder, or another container. `where` names the entity in errors.
    """
    where = where or model_blob
    parts = urlsplit(location.strip())
    path = unquote(parts.path if parts.scheme else location.strip()).lstrip("/")
    shown = urlunsplit(parts._replace(query="", fragment=""))  # a SAS token in the query stays out of errors
    if any(segment in (".", "..") for segment in _PATH_SEPARATORS.split(path)):
        raise SegmentError(
            f"{where}: partition location {shown} has a '.' or '..' path segment (plain or percent-encoded); "
            "a partition must be named by its own path"
        )
    folder = export_folder(model_blob)
    index = ("/" + path).find("/" + folder)
    if index != -1:
        return path[index:]
    segments = path.split("/")
    for skip in (0, 1):  # <container>/<path> or, on an emulator, <account>/<container>/<path>
        if len(segments) > skip + 1 and segments[skip] == container_name:
            return "/".join(segments[skip + 1:])
    raise SegmentError(f"{where}: partition location {shown} is not in container {container_name!r} nor under {folder}")


_PATH_SEPARATORS = re.compile(r"[/\\]")  # a backslash is a slash to some URL parsers


def _csv_format(settings: dict, where: str) -> CsvFormat:
    if settings.get("$type", "CsvFormatSettings") != "CsvFormatSettings":
        raise SegmentError(f"{where}: fileFormatSettings $type {settings.get('$type')!r} is not CsvFormatSettings")
    quote_style = str(settings.get("quoteStyle", "QuoteStyle.Csv"))
    try:
        return CsvFormat(
            delimiter=settings.get("delimiter", ","),
            quote="" if quote_style.endswith("None") else '"',
            header=bool(settings.get("columnHeaders", False)),
            encoding=settings.get("encoding", "UTF-8"),
        )
    except (ValueError, TypeError) as err:
        raise SegmentError(f"{where}: {err}") from None


def model_entities(doc: dict, model_blob: str) -> list[dict]:
    entities = doc.get("entities")
    if not isinstance(entities, list):
        raise SegmentError(f"{model_blob} has no entities list")
    return [e for e in entities if isinstance(e, dict)]


def _entity_columns(entity: dict, where: str) -> tuple[str, ...]:
    attributes = entity.get("attributes")
    if not isinstance(attributes, list) or not attributes:
        raise SegmentError(f"{where}: entity has no attributes (column names)")
    names = tuple(str(a.get("name", "")).strip() if isinstance(a, dict) else "" for a in attributes)
    if not all(names):
        raise SegmentError(f"{where}: an attribute has no name")
    return names


def _folder_time(path_in_export: str) -> datetime | None:
    m = _CI_FOLDER.match(path_in_export)
    if not m:
        return None
    hm = m["hm"]
    try:
        return datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(hm[:2]), int(hm[2:]), tzinfo=timezone.utc)
    except ValueError:
        return None


def _partition_order(blob: str) -> tuple[int, str]:
    m = _PARTITION_NUMBER.search(blob)
    return (int(m.group(1)) if m else 0, blob)


def _ci_segment(container: ContainerClient, model_blob: str, model_time: datetime, entity: dict) -> Segment:
    """The current version of one entity: the newest folder model.json lists, every partition present."""
    name = str(entity.get("name", "")).strip()
    where = f"{model_blob}, entity {name!r}"
    if not name:
        raise SegmentError(f"{model_blob}: an entity has no name")
    columns = _entity_columns(entity, where)
    listed = entity.get("partitions")
    if not isinstance(listed, list) or not listed:
        raise SegmentError(f"{where}: lists no partitions")
    folder = export_folder(model_blob)
    by_folder: dict[str, list[_ListedPartition]] = {}
    for item in listed:
        if not isinstance(item, dict) or not item.get("location"):
            raise SegmentError(f"{where}: a partition has no location")
        blob = resolve_location(str(item["location"]), model_blob, container.container_name, where=where)
        fmt = _csv_format(item.get("fileFormatSettings") or {}, f"{where}, partition {blob}")
        by_folder.setdefault(posixpath.dirname(blob), []).append(_ListedPartition(blob, fmt))

    def folder_time(path: str) -> datetime:
        relative = path[len(folder):] + "/x" if path.startswith(folder) else ""
        return _folder_time(relative) or model_time

    newest = max(by_folder, key=lambda path: (folder_time(path), path))
    wanted = sorted(by_folder[newest], key=lambda p: _partition_order(p.blob))
    formats = {p.format for p in wanted}
    if len(formats) > 1:
        raise SegmentError(f"{where}: partitions in {newest}/ have different fileFormatSettings")
    present = {b.name: b for b in container.list_blobs(name_starts_with=newest + "/")}
    missing = [p.blob for p in wanted if p.blob not in present]
    if missing:
        raise SegmentError(
            f"{where}: partition(s) listed in model.json but absent from the container: {', '.join(missing)}"
        )
    partitions = tuple(Partition(p.blob, present[p.blob].etag, present[p.blob].size) for p in wanted)
    return Segment(name, LAYOUT_CI, columns, folder_time(newest), partitions, formats.pop(), model_blob)


def model_blobs(container: ContainerClient) -> list:
    """Every <CustomerInsights_id>/<ExportName>/model.json (blob properties)."""
    found = []
    for top in container.walk_blobs(delimiter="/"):
        if top.name.startswith(CI_PREFIX) and top.name.endswith("/"):
            for export in container.walk_blobs(name_starts_with=top.name, delimiter="/"):
                if export.name.endswith("/"):
                    for blob in container.list_blobs(name_starts_with=export.name + MODEL_JSON):
                        if blob.name == export.name + MODEL_JSON:
                            found.append(blob)
    return found


def ci_segments(container: ContainerClient, errors: list[SegmentError] | None, only: str | None = None):
    """Each entity's current version. A broken model.json goes to `errors` (raises without it); a
    broken entity too, unless it is the one asked for (`only`), which raises."""
    for model in model_blobs(container):
        try:
            doc = read_json(container, model.name)
            entities = model_entities(doc, model.name)
        except SegmentError as err:
            if errors is None:
                raise
            errors.append(err)
            continue
        for entity in entities:
            if only is not None and str(entity.get("name", "")).strip().lower() != only.lower():
                continue
            try:
                yield _ci_segment(container, model.name, model.last_modified, entity)
            except SegmentError as err:
                if errors is None or only is not None:
                    raise
                errors.append(err)
