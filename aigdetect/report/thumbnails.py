"""Small JPEG previews of scanned files, embedded in the report as data URIs.

Originals are hostile files, so they are opened the way the scan opens them (``open_input``: no
links followed, regular files only; ``open_image``: allow-listed decoders) and refused above a pixel
count before any pixel is decoded. A file that changed since the scan (another size or time) gets
no preview: it would show something other than what was scored. And since the results file may
come from someone else, who would get the report back, a row names only what the scan saw: a
file outside the scan's folder, or a row without a size and time to check, gets no preview. Like the detector, previews show
the pixel grid as encoded, without EXIF rotation.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from ..data.images import DEFAULT_MAX_PIXELS, open_image, to_rgb_array
from ..errors import InputFileError
from ..fileio import open_input
from ..progress import ProgressCallback, ProgressEvent
from ..results.paths import raw_path
from ..results.schema import SEVERITY, ScanRow

THUMBNAIL_SIZE = 192
"""Longest side of an embedded preview, in pixels."""
JPEG_QUALITY = 70

GONE, CHANGED, UNREADABLE, NOT_AN_IMAGE, TOO_LARGE, UNDECODABLE, OUTSIDE, UNVERIFIED = (
    "gone", "changed", "unreadable", "not-an-image", "too-large", "undecodable", "outside", "unverified",
)  # fmt: skip
"""Why a row that was due a preview shows a placeholder."""


@dataclass(frozen=True)
class Thumbnail:
    """A preview as a ``data:image/jpeg`` URI, or the reason there is none."""

    data_uri: str | None
    reason: str | None = None


def thumbnail_order(rows: Sequence[ScanRow]) -> list[int]:
    """Indices of the rows that can have a preview (status ok): most suspicious verdict first, then higher score."""
    rank = {kind: position for position, kind in enumerate(SEVERITY)}

    def key(index: int) -> tuple[int, float, int]:
        row = rows[index]
        score = row.score if row.score is not None else float("-inf")
        return rank.get(row.verdict, len(SEVERITY)), -score, index

    return sorted((i for i, row in enumerate(rows) if row.status == "ok"), key=key)


def _reason(exc: InputFileError) -> str:
    return {"missing": GONE, "symlink": UNREADABLE, "unreadable": UNREADABLE, "unsupported": NOT_AN_IMAGE}.get(
        exc.reason, UNREADABLE
    )


def make_thumbnail(
    path: bytes | str | os.PathLike[str],
    *,
    size: int | None = None,
    mtime_ns: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    side: int = THUMBNAIL_SIZE,
) -> Thumbnail:
    """A JPEG preview whose longest side is at most ``side``, or why there is none.

    Args:
        path: the original file (exact bytes, as ``raw_path`` gives them).
        size, mtime_ns: what the scan recorded; a file that no longer matches gets no preview.
        max_pixels: width x height above which the file is not decoded.
        side: the longest side of the preview.

    Returns:
        The preview, or a ``Thumbnail`` with ``reason`` set (gone, changed, unreadable,
        not-an-image, too-large, undecodable); a bad original never raises.
    """
    try:
        handle, info = open_input(path, follow_symlinks=False)
    except InputFileError as exc:
        return Thumbnail(None, _reason(exc))
    with handle:
        if (size is not None and info.st_size != size) or (mtime_ns is not None and info.st_mtime_ns != mtime_ns):
            return Thumbnail(None, CHANGED)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return _encode(handle, max_pixels, side)
        except (MemoryError, Image.DecompressionBombError):
            return Thumbnail(None, TOO_LARGE)
        except Exception:  # a hostile original may make any decoder raise anything; the row shows why it has no preview
            return Thumbnail(None, UNDECODABLE)


def _encode(handle: io.BufferedIOBase, max_pixels: int, side: int) -> Thumbnail:
    try:
        image = open_image(handle)
    except Image.UnidentifiedImageError:
        return Thumbnail(None, NOT_AN_IMAGE)
    with image:
        width, height = image.size
        if width * height > max_pixels or width < 1 or height < 1:
            return Thumbnail(None, TOO_LARGE)
        image.seek(0)
        image.draft(None, (side, side))
        image.load()
        preview = Image.fromarray(to_rgb_array(image))
    preview.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    buffer = io.BytesIO()
    preview.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return Thumbnail("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))


def _inside(path: bytes, root: bytes) -> bool:
    """Whether ``path`` lies under ``root`` once links in its folders are resolved (the file itself is
    opened without following a link)."""
    folder = os.path.realpath(os.path.dirname(path) or b".")
    return os.path.commonpath([folder, root]) == root


THUMBNAILS_STAGE = "thumbnails"
"""The stage of the events a report reports while it makes its previews."""


def make_thumbnails(
    rows: Sequence[ScanRow],
    limit: int,
    *,
    root: str | os.PathLike[str] | None = None,
    within: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[int, Thumbnail]:
    """Previews for the ``limit`` most suspicious ok rows, keyed by row index.

    Only a file under ``within`` whose size and time match its row gets a preview.

    Args:
        rows: the scan's rows; paths are the escaped text of the ``path`` column.
        limit: the most previews made; the other rows get none.
        root: the folder the scan ran in, against which relative paths are resolved; the
            current folder when None.
        within: the folder files must be under to get a preview: ``root`` when None. Rows a run
            has just written itself name only files its walk found, so that run may widen it.
        progress: called after each preview with a ``thumbnails`` event: previews done and to make.
    """
    chosen = thumbnail_order(rows)[: max(0, limit)]
    base = os.path.realpath(os.fsencode(root) if root is not None else os.getcwdb())
    fence = os.path.realpath(os.fsencode(within)) if within is not None else base
    made: dict[int, Thumbnail] = {}
    for done, index in enumerate(chosen, start=1):
        row = rows[index]
        path = os.path.join(base, raw_path(row.path))
        if row.size is None or row.mtime_ns is None:
            made[index] = Thumbnail(None, UNVERIFIED)
        elif not _inside(path, fence):
            made[index] = Thumbnail(None, OUTSIDE)
        else:
            made[index] = make_thumbnail(path, size=row.size, mtime_ns=row.mtime_ns)
        if progress is not None:
            progress(ProgressEvent(THUMBNAILS_STAGE, done, len(chosen)))
    return made
