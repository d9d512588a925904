"""The errors of incremental sync: one root, subclasses by what went wrong."""
from __future__ import annotations


class SyncError(Exception):
    """Root of every error raised by `shared.sync`."""


class StateFormatError(SyncError):
    """Stored sync state that cannot be read: truncated, corrupt, or not a sync state at all.

    `where` names the part that was wrong (header, a section, an offset)."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


class UnknownVersionError(StateFormatError):
    """A sync state written by a version of the format this code does not know."""

    def __init__(self, version: int, known: tuple[int, ...]) -> None:
        super().__init__(f"sync state format version {version} is not supported (this code reads "
                         f"{', '.join(map(str, known))})", where="header")
        self.version = version


class TooManyTagsError(SyncError, ValueError):
    """An export that would own more segment tags than a state's tag mask can hold."""


class ChangeError(SyncError, ValueError):
    """Run outcomes that cannot be applied: out of key order, or a new contact without its email."""


class StateConflictError(SyncError):
    """The stored state was replaced by someone else since it was read (the ETag no longer matches)."""
