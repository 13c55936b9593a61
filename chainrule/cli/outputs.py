"""Files the ``chainrule`` command writes: checked before the work that makes them starts,
and an OSError told in one line (the file, the system's reason, what to do).

A training run that ends after an hour and cannot then write its metrics has lost the hour.
So ``chainrule train`` checks its output folder first and ``chainrule cost --plot`` its
picture's: the folder is created, a file is written into it and renamed, as the real outputs
will be (each goes to a temporary file renamed over the old one, so an old file stays whole
until the new one is complete), and an output name taken by a folder is refused.

>>> import errno
>>> describe_os_error(OSError(errno.ENOSPC, "No space left on device", "runs/model.safetensors"))
'runs/model.safetensors: No space left on device; free some disk space, or write to another disk'
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from ..io import write_atomic
from .commands import CommandError

__all__ = ["check_output_folder", "check_output_file", "describe_os_error"]

# What to do about the errors a write (or a read) meets most, by errno.
_ADVICE = {
    errno.ENOSPC: "free some disk space, or write to another disk",
    errno.EACCES: "check the permissions, or choose another path",
    errno.EPERM: "check the permissions, or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EISDIR: "that is a folder: give a file",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
    errno.ENAMETOOLONG: "choose a shorter name",
}


def describe_os_error(err: OSError) -> str:
    """One line for an OSError: the file it names (if any), the system's reason and, for
    the common ones, what to do."""
    reason = err.strerror or str(err) or type(err).__name__
    advice = _ADVICE.get(err.errno) if err.errno is not None else None
    text = reason if advice is None else f"{reason}; {advice}"
    return text if err.filename is None else f"{err.filename}: {text}"


def check_output_folder(folder: Path, names: Sequence[str], flag: str) -> None:
    """Make sure the files ``names`` can be written into ``folder`` (given as ``flag``),
    creating the folder; CommandError naming the flag and the problem otherwise. Nothing
    already in the folder is changed."""
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{flag} {folder} is not a folder; give a folder for the run's files")
    _make_folder(folder, f"{flag} {folder}")
    for name in names:
        _refuse_non_file(folder / name, f"{flag} {folder}", flag)
    _probe(folder, f"{flag} {folder}")


def check_output_file(path: Path, flag: str) -> None:
    """Make sure ``path`` (given as ``flag``) can be written, creating its folder;
    CommandError naming the flag and the problem otherwise. An old file is not changed."""
    _make_folder(path.parent, f"{flag} {path}")
    _refuse_non_file(path, f"{flag} {path}", flag)
    _probe(path.parent, f"{flag} {path}")


def _make_folder(folder: Path, subject: str) -> None:
    blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise CommandError(f"{subject}: cannot write there: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CommandError(
            f"{subject}: cannot create the folder {folder}: {_reason(err)}"
        ) from None


def _refuse_non_file(path: Path, subject: str, flag: str) -> None:
    if path.is_dir():
        raise CommandError(
            f"{subject}: {path} is a folder, where a file is to be written; move it away or "
            f"give another {flag}"
        )
    if path.exists() and not path.is_file():
        raise CommandError(f"{subject}: {path} is not a regular file (a device or a pipe?)")


def _probe(folder: Path, subject: str) -> None:
    """Write a small file into ``folder`` the way the outputs are written (a temporary file
    renamed into place), then remove it."""
    probe = folder / f".chainrule-probe-{os.getpid()}.tmp"
    try:
        write_atomic(probe, b"chainrule checks that this folder takes files\n")
        probe.unlink()
    except OSError as err:
        raise CommandError(f"{subject}: cannot write files in {folder}: {_reason(err)}") from None


def _reason(err: OSError) -> str:
    """The system's reason and the advice for it, without the file name."""
    return describe_os_error(OSError(err.errno, err.strerror or str(err)))
