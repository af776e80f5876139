"""The scan walker: every entry once, byte order, symlink policy, loops, unreadable folders, FIFOs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from aigdetect.errors import InputError
from aigdetect.scan import walk as walk_module
from aigdetect.scan import walk_paths
from aigdetect.scan.walk import walk_stream


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _listing(root: Path, **options) -> dict[str, tuple[str, str] | None]:
    return {os.path.relpath(f.path, root): f.problem and f.problem[0] for f in walk_paths([str(root)], **options)}


def test_lists_every_regular_file_once_in_byte_order_without_extension_filter(tmp_path):
    for name in ("b.png", "a.txt", "sub/z.jpg", "sub/deeper/y", "A.PNG", "sub-x/c.gif"):
        _touch(tmp_path / name, b"12345")
    found = walk_paths([str(tmp_path)])
    relative = [os.path.relpath(f.path, tmp_path) for f in found]
    assert relative == sorted(relative, key=os.fsencode)
    assert relative == ["A.PNG", "a.txt", "b.png", "sub-x/c.gif", "sub/deeper/y", "sub/z.jpg"]  # "-" < "/"
    assert all(f.problem is None and f.size == 5 and f.mtime_ns == os.stat(f.path).st_mtime_ns for f in found)


def test_no_recursive_keeps_the_top_level_files_only(tmp_path):
    _touch(tmp_path / "top.png")
    _touch(tmp_path / "sub" / "inner.png")
    assert _listing(tmp_path, recursive=False) == {"top.png": None}


def test_overlapping_roots_and_a_single_file_root_are_listed_once(tmp_path):
    _touch(tmp_path / "sub" / "a.png")
    _touch(tmp_path / "b.png")
    found = walk_paths([str(tmp_path / "sub"), str(tmp_path), str(tmp_path / "b.png")])
    assert [os.path.relpath(f.path, tmp_path) for f in found] == ["b.png", "sub/a.png"]


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="PATH not found"):
        walk_paths([str(tmp_path / "nope")])
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="broken symbolic link"):
        walk_paths([str(tmp_path / "dangling")])


def test_symlinks_are_reported_not_followed_by_default(tmp_path):
    _touch(tmp_path / "real" / "a.png")
    (tmp_path / "real" / "loop").symlink_to("..")
    (tmp_path / "file_link.png").symlink_to(tmp_path / "real" / "a.png")
    (tmp_path / "broken.png").symlink_to(tmp_path / "missing.png")
    assert _listing(tmp_path) == {
        "broken.png": "symlink",
        "file_link.png": "symlink",
        "real/a.png": None,
        "real/loop": "symlink",
    }


def test_follow_symlinks_scores_linked_files_and_never_loops(tmp_path):
    _touch(tmp_path / "tree" / "real" / "a.png", b"abc")
    _touch(tmp_path / "outside" / "o.png", b"outside")
    (tmp_path / "tree" / "real" / "loop").symlink_to("..")
    (tmp_path / "tree" / "again").symlink_to("real")
    (tmp_path / "tree" / "ext").symlink_to(tmp_path / "outside")
    (tmp_path / "tree" / "file_link.png").symlink_to(tmp_path / "tree" / "real" / "a.png")
    (tmp_path / "tree" / "broken.png").symlink_to(tmp_path / "missing.png")
    (tmp_path / "tree" / "ping").symlink_to("pong")
    (tmp_path / "tree" / "pong").symlink_to("ping")
    found = {os.path.relpath(f.path, tmp_path / "tree"): f for f in walk_paths([str(tmp_path / "tree")], follow_symlinks=True)}
    assert {k: f.problem and f.problem[0] for k, f in found.items()} == {
        "again": "duplicate",
        "broken.png": "missing",
        "ext/o.png": None,
        "file_link.png": None,
        "ping": "symlink-loop",
        "pong": "symlink-loop",
        "real/a.png": None,
        "real/loop": "symlink-loop",
    }
    assert found["file_link.png"].size == 3
    assert "real" in found["again"].problem[1]


def test_a_symlink_named_on_the_command_line_is_followed(tmp_path):
    _touch(tmp_path / "real" / "a.png")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert [os.path.relpath(f.path, tmp_path) for f in walk_paths([str(tmp_path / "alias")])] == ["alias/a.png"]


def test_unreadable_folder_is_reported(tmp_path, monkeypatch):
    _touch(tmp_path / "open" / "a.png")
    _touch(tmp_path / "locked" / "secret.png")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(walk_module.os, "scandir", scandir)
    found = walk_paths([str(tmp_path)])
    assert [(os.path.relpath(f.path, tmp_path), f.problem) for f in found] == [
        ("locked", ("unreadable", "folder cannot be listed: Permission denied")),
        ("open/a.png", None),
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 folder anyway; the monkeypatched test covers it")
def test_chmod_000_folder_is_reported(tmp_path):
    _touch(tmp_path / "locked" / "secret.png")
    (tmp_path / "locked").chmod(0)
    try:
        assert _listing(tmp_path) == {"locked": "unreadable"}
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_fifo_is_reported_without_being_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    found = walk_paths([str(tmp_path)])
    assert [(os.path.relpath(f.path, tmp_path), f.problem) for f in found] == [
        ("pipe", ("unsupported", "not a regular file (fifo)"))
    ]


def test_non_utf8_names_are_kept_as_surrogate_escaped_text(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(raw, "wb") as handle:
        handle.write(b"data")
    (found,) = walk_paths([str(tmp_path)])
    assert os.fsencode(found.path) == raw
    assert found.size == 4


def test_deep_trees_do_not_hit_the_recursion_limit(tmp_path):
    folder = tmp_path
    for _ in range(60):
        folder = folder / "d"
    _touch(folder / "leaf.png")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50)
    try:
        found = walk_paths([str(tmp_path)])
    finally:
        sys.setrecursionlimit(limit)
    assert [f.path for f in found] == [str(folder / "leaf.png")]


def test_the_streamed_walk_gives_the_rows_of_the_collected_walk_in_the_same_order(tmp_path):
    rng = np.random.default_rng(5)
    names = ["a", "a-b", "a.b", "ab", "a b", "Z", "\xe9", "a_", "a0"]

    def make(folder: Path, depth: int) -> None:
        for name in rng.choice(names, size=5, replace=False):
            if depth and rng.random() < 0.6:
                (folder / name).mkdir()
                make(folder / name, depth - 1)
            else:
                (folder / name).write_bytes(b"x" * int(rng.integers(1, 9)))

    make(tmp_path, 3)
    os.symlink("a", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    roots = [str(tmp_path), str(tmp_path / "a")] if (tmp_path / "a").is_dir() else [str(tmp_path)]
    collected = walk_paths(roots)
    streamed = list(walk_stream(roots))
    assert [f.path for f in streamed] == [f.path for f in collected]
    assert streamed == collected
    assert len(collected) > 20
