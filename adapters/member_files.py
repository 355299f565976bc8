"""How a :class:`~rag_retrievers.adapters.hybrid.Hybrid` stores its members in its own folder:
each member's plain data files side by side under a prefix (``m0.``, ``m1.``, ...), and in the
manifest each member's prefix and its own manifest extras, so one atomic save covers all members
and each is read back through its own class's reader.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag_retrievers.base import Retriever
from rag_retrievers.errors import CorruptCollectionError, ForeignCollectionError, UnknownNameError
from rag_retrievers.registry import retriever_class

__all__ = ["members_manifest", "read_member", "write_members"]


def write_members(
    folder: Path, names: Sequence[str], writers: Sequence[Callable[[Path], None]]
) -> None:
    """Run each member's writer (its ``_snapshot()``) into ``folder``, its files prefixed."""
    for i, (name, writer) in enumerate(zip(names, writers, strict=True)):
        staging = folder / f".member-{i}"
        staging.mkdir()
        writer(staging)
        for file in sorted(staging.iterdir()):
            if not file.is_file() or file.is_symlink():
                raise CorruptCollectionError(
                    f"member {name!r} wrote {file.name!r}, which is not a plain file; "
                    "a Hybrid stores its members' plain files only"
                )
            file.rename(folder / f"m{i}.{file.name}")
        staging.rmdir()


def members_manifest(retrievers: Sequence[Retriever]) -> dict[str, Any]:
    """The manifest's ``members``: each member's file prefix and its own manifest extras."""
    extras = [r._manifest_extra() for r in retrievers]
    return {"members": [{"prefix": f"m{i}.", "extra": e} for i, e in enumerate(extras)]}


def read_member(folder: Path, manifest: dict[str, Any], spec: Any, info: Any) -> Retriever:
    """Rebuild one member from its prefixed files, through the member class's own reader."""
    if not (
        isinstance(spec, dict)
        and isinstance(info, dict)
        and isinstance(info.get("prefix"), str)
        and isinstance(info.get("extra", {}), dict)
    ):
        raise CorruptCollectionError(f"{folder}: malformed member entry {spec!r} / {info!r}")
    try:
        member_cls = retriever_class(spec.get("retriever"))  # type: ignore[arg-type]
    except UnknownNameError as exc:
        raise ForeignCollectionError(f"{folder}: member {exc.name!r} is not registered") from None
    prefix = info["prefix"]
    files = {
        name[len(prefix) :]: entry
        for name, entry in manifest["files"].items()
        if name.startswith(prefix)
    }
    member_manifest = {
        **{key: value for key, value in manifest.items() if key not in ("members", "config")},
        **info.get("extra", {}),
        "retriever": member_cls.name,
        "config": spec.get("config") or {},
        "files": files,
    }
    # the member's reader expects its files under their own names: a private folder of links
    with tempfile.TemporaryDirectory(prefix="rag-retrievers-member-") as tmp:
        view = Path(tmp)
        for name in files:
            (view / name).symlink_to((folder / f"{prefix}{name}").resolve())
        return member_cls._restore(view, member_manifest, folder.parent)
