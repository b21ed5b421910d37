"""Entity tags: a schedule's ETag is its version; ``If-Match`` guards writes."""

from __future__ import annotations

from scheduler.errors import PreconditionFailed


def etag(version: int) -> str:
    """The strong ETag of a schedule version."""
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int | None) -> None:
    """Raise :class:`PreconditionFailed` unless ``If-Match`` allows writing ``version``.

    ``version`` is None when the schedule does not exist: then only no header passes.
    """
    if if_match is None:
        return
    if version is None:
        raise PreconditionFailed("If-Match given, but the schedule does not exist")
    tags = {tag.strip() for tag in if_match.split(",")}
    if "*" in tags or etag(version) in tags:
        return
    raise PreconditionFailed(f"If-Match {if_match} does not match the current ETag {etag(version)}")
