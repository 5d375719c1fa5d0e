"""Writing files all or nothing: the one helper every command that writes uses.

A file is written beside its final name and renamed over it only when complete
(and checked, where the caller checks it), so an error or an interrupt leaves
an existing file as it was. The new file gets the mode the old one had, or
for a new file the mode ``open()`` would give it (0666 less the umask), never
the 0600 of a raw temporary file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def temporary_beside(output: Path, suffix: str = ".tmp") -> Path:
    """A fresh name in the output's folder (so the rename is atomic), ending as the format demands."""
    return output.with_name(f".{output.name}.{os.getpid()}.tmp{suffix}")


def replace_atomic(
    write: Callable[[Path], None], output: Path, suffix: str = ".tmp", check: Callable[[Path], None] | None = None
) -> None:
    """``write`` a temporary file beside ``output``, ``check`` it, then rename it over ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(output, suffix)
    try:
        write(tmp)
        if check:
            check(tmp)
        os.chmod(tmp, _mode_for(output))
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_tree_atomic(
    write: Callable[[Path], None], output: Path, check: Callable[[Path], None] | None = None
) -> None:
    """``write`` a folder beside ``output`` (a SavedModel), ``check`` it, then put it in ``output``'s place.

    A folder cannot be renamed over a full one, so an old ``output`` is first renamed aside and removed
    once the new one is in place (restored if that rename fails): a reader never sees a half folder.
    """
    import shutil

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = temporary_beside(output), temporary_beside(output, ".old")
    try:
        write(tmp)
        if check:
            check(tmp)
        if output.exists():
            os.replace(output, old)
        try:
            os.replace(tmp, output)
        except OSError:
            if old.exists():
                os.replace(old, output)
            raise
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()


def write_text(path: Path, text: str) -> None:
    """Write text (UTF-8, ``\\n`` line ends) atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)

    replace_atomic(write, path)
