"""Which segments a container holds: every layout's current versions, one by name (with the
reason when it is missing), and the segments a newly written blob changes."""
from __future__ import annotations

from azure.storage.blob import ContainerClient

from .blobs import read_json
from .customer_insights import CI_PREFIX, MODEL_JSON, ci_segments, export_folder, model_blobs, model_entities
from .model import Segment, SegmentError, SegmentNotFoundError
from .plain import is_csv, plain_segments


def list_segments(container: ContainerClient, *, errors: list[SegmentError] | None = None) -> list[Segment]:
    """Every segment in the container (each CI entity's current version, each plain CSV/folder).

    With `errors` given, a broken export is reported there and the others are still listed;
    without, the first problem raises.
    """
    found = list(ci_segments(container, errors)) + list(plain_segments(container, errors))
    return sorted(found, key=lambda s: (s.name.lower(), s.updated_at))


def get_segment(container: ContainerClient, name: str) -> Segment:
    """The newest complete version of a segment (name matched case-insensitively)."""
    unreadable: list[SegmentError] = []  # other exports' broken model.json must not hide this one
    found = list(ci_segments(container, unreadable, only=name)) + list(plain_segments(container, None, only=name))
    if found:
        return max(found, key=lambda s: s.updated_at)
    message = _not_found_message(container, name)
    if unreadable:
        message += "; unreadable exports: " + "; ".join(str(e) for e in unreadable)
    raise SegmentNotFoundError(message)


def _not_found_message(container: ContainerClient, name: str) -> str:
    """Say why: partitions written for a table that no model.json lists are an incomplete export."""
    for model in model_blobs(container):
        folder = export_folder(model.name)
        table_folder = f"{folder}{name}/"
        if any(True for _ in container.list_blobs(name_starts_with=table_folder, results_per_page=1)):
            try:
                names = [str(e.get("name")) for e in model_entities(read_json(container, model.name), model.name)]
            except SegmentError as err:
                return f"segment {name!r}: partitions exist under {table_folder} but {err}"
            return (
                f"segment {name!r}: {model.name} has no entity {name!r} (it lists: {', '.join(names) or 'none'}); "
                f"partitions exist under {table_folder}, so that export is incomplete or model.json is stale"
            )
    for top in container.walk_blobs(delimiter="/"):
        if top.name.startswith(CI_PREFIX) and top.name.endswith("/"):
            for export in container.walk_blobs(name_starts_with=top.name, delimiter="/"):
                prefix = f"{export.name}{name}/"
                if export.name.endswith("/") and any(True for _ in container.list_blobs(name_starts_with=prefix)):
                    return f"segment {name!r}: partitions exist under {prefix} but {export.name}{MODEL_JSON} is missing"
    return (
        f"segment {name!r} not found in container {container.container_name!r} "
        f"(neither a Customer Insights model.json entity nor {name}.csv nor {name}/*.csv)"
    )


def segments_affected_by_blob(container: ContainerClient, blob_path: str) -> list[str]:
    """Segments a just-written blob changes: a model.json -> its entities, a plain CSV -> its segment.

    CI partitions return [] (model.json is written after them and is the signal), as do other blobs.
    """
    path = blob_path.lstrip("/")
    parts = path.split("/")
    if parts[0].startswith(CI_PREFIX):
        if len(parts) == 3 and parts[2] == MODEL_JSON:
            try:
                doc = read_json(container, path)
                return [str(e.get("name")) for e in model_entities(doc, path) if e.get("name")]
            except SegmentError:
                return []
        return []
    if not is_csv(path):
        return []
    return [path[:-4]] if len(parts) == 1 else [parts[0]]
