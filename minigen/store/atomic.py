"""Atomic file writes: a temp file in the same folder, fsync, then rename.

A reader (or a crash) never sees a half-written output; an earlier output stays
untouched until the new one is complete. Stage output folders go through `staged_dir`
alone: one writer at a time per folder (`output_lock`), leftovers of a killed run cleaned,
modes as the umask says. A full or read-only disk becomes a one-line `UserError`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from minigen.errors import UserError


def ensure_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot create folder {path}: a file of that name is in the way")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"output folder {path} is not writable")
    return path


def check_writable(folder: str | os.PathLike, what: str) -> Path:
    """Fail now, in one line, if `folder` cannot be created or written: before training, not after."""
    folder = ensure_dir(folder)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".minigen-probe.")
    except OSError as exc:  # os.access says yes to root even on a read-only mount
        raise UserError(f"{what} {folder} is not writable: {exc.strerror} (fix it, then rerun)") from None
    os.close(fd)
    os.unlink(probe)
    return folder


def check_output_dir(final: str | os.PathLike) -> Path:
    """Fail now if output folder `final` could not be swapped in at the end."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise UserError(f"output {final} exists and is not a folder: move it away")
    check_writable(final.parent, "output folder")
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Write failures the user causes and fixes (full disk, quota, read-only or foreign folder).
USER_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def write_error(exc: OSError, path: str | os.PathLike) -> UserError | OSError:
    """A write's OSError as one line naming `path` when the user can fix it, else unchanged."""
    if exc.errno not in USER_WRITE_ERRNOS:
        return exc
    return UserError(f"cannot write {exc.filename or path}: {exc.strerror} (free space or fix permissions, then rerun)")


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    ensure_dir(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide outputs from other users
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(exc, path) from None
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Stable JSON: sorted keys, fixed indentation, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, dumps_json(obj))


def _replace_dir(staging: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Swap a fully written staging folder into place of `final` (hold `output_lock`)."""
    staging, final = Path(staging), Path(final)
    old = _old(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def _old(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def _staging_dir(final: str | os.PathLike) -> Path:
    """A fresh temp folder beside `final`, for building an output before `_replace_dir`."""
    final = Path(final)
    ensure_dir(final.parent)
    try:
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    except OSError as exc:
        raise write_error(exc, final.parent) from None
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the output from other users
    return staging


@contextmanager
def output_lock(final: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of output folder `final`: concurrent writers of it take turns.

    The lock is `flock` on `.NAME.lock` beside `final` (beside it, not in a user's cache, so
    two users sharing a project wait for each other too). The kernel drops it when its
    holder dies, so a killed run never blocks the next; the file is removed on release.
    """
    final = Path(final)
    ensure_dir(final.parent)
    lock = final.with_name(f".{final.name}.lock")
    fd = _acquire(lock)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # before the release: a waiter on this file then retries
        os.close(fd)


def _acquire(lock: Path) -> int:
    """An fd holding `flock` on the file now at `lock` (retried if a holder removed it meanwhile)."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except IsADirectoryError:
            raise UserError(f"{lock} is a folder: remove it (it is minigen's lock file)") from None
        except OSError as exc:
            raise write_error(exc, lock) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if _same_file(os.stat(lock), os.fstat(fd)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def clean_leftovers(final: str | os.PathLike) -> None:
    """Undo what a killed swap of `final` left behind (call under `output_lock`).

    A kill between the swap's two renames leaves `final` gone and the earlier output in
    `.NAME.old`: it is put back. Staging folders (`.NAME.XXXXXXXX.tmp`) are removed.
    """
    final = Path(final)
    old = _old(final)
    if old.is_dir() and not final.exists():
        os.replace(old, final)
    shutil.rmtree(old, ignore_errors=True)
    # mkdtemp's 8-character middle: a sibling output whose name starts with ours never matches.
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}\.tmp")
    for leftover in final.parent.iterdir():
        if pattern.fullmatch(leftover.name) and leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build output folder `final` in a staging folder; swap it in only if the block succeeds.

    The one way stage outputs are written: under the folder's lock, after cleaning what a
    killed earlier run left, with folder and file modes as the umask says (0755/0644).
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise UserError(f"output {final} exists and is not a folder: move it away")
    with output_lock(final):
        clean_leftovers(final)
        staging = _staging_dir(final)
        try:
            yield staging
            try:
                _replace_dir(staging, final)
            except OSError as exc:
                raise write_error(exc, final) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when the swap succeeded


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: replace it with the {what} minigen wrote") from None
    except RecursionError:
        raise UserError(f"{path} nests too deeply to be a {what}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
