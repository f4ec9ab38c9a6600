"""Files written by anchored-learning: one atomic-write policy and one output-path check.

Every result, model folder, cache and snapshot is first written under a temporary sibling name
and then renamed into place with ``os.replace``, so a killed process leaves either the old
complete file (or folder) or the new complete one, never half of one.  The temporary name is
hidden and starts with the final name (``.NAME.<random>.tmp``, ``.NAME.tmp-<random>``), so what a
killed process leaves behind is easy to recognise; it is not removed automatically.

* :func:`atomic_file`, :func:`write_json_atomic`, :func:`write_text_atomic`: a file.
* :func:`atomic_folder`: a folder (a model save, an anchor cache, a snapshot).
* :func:`check_output_path`: fail before any work when an output cannot be written.
* :func:`lock_output_folder`: one command at a time writes into an output folder.
* :data:`DISK_FULL`: the errors of a full disk, which the command line reports without a traceback.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_file",
    "atomic_folder",
    "check_output_path",
    "lock_output_folder",
    "read_json",
    "replace_folder",
    "write_json_atomic",
    "write_text_atomic",
]


#: ``OSError.errno`` values of a full disk or an exhausted quota
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: the lock file inside an output folder (see :func:`lock_output_folder`)
LOCK_FILE = ".anchored.lock"


def _file_mode() -> int:
    """0666 less the process umask: what ``open(path, "w")`` would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically: yields a temporary sibling path (same suffix, so writers that pick
    a format from it, such as ``savefig``, still do); when the block ends without an exception the
    file is flushed to disk and renamed to ``path``, and on an exception it is deleted.  Parent
    folders are created; the file gets the usual umask permissions.

    Raises:
        OSError: the folder cannot be written (nothing is left behind).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; a results file is as readable as any other
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_file`).

    Returns:
        ``path`` as a Path.
    """
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by None, recursively through
    dicts, lists and tuples, so that ``json.dumps`` writes strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike) -> Any:
    """The content of a JSON file written by this library (an evaluation, a config record).

    Raises:
        ValueError: the file is not valid JSON: the message names the file and the position (a file
            cut short or edited by hand; delete it and re-run the stage that writes it).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"{path} is not valid JSON ({e}): it was cut short or edited; delete it and re-run the stage that writes it"
        ) from None


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON to ``path`` atomically (see :func:`write_text_atomic`).

    Non-finite floats become ``null``; objects JSON does not know (paths, dtypes) are written as
    their ``str``.

    Returns:
        ``path`` as a Path.
    """
    return write_text_atomic(path, json.dumps(finite(obj), indent=2, default=str) + "\n")


def replace_folder(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the finished folder ``tmp`` to ``path``, replacing whatever ``path`` held.

    The last step of an atomic folder write whose temporary folder is shared between processes
    (the anchor cache, built by every rank into one folder); single-process writers use
    :func:`atomic_folder`.
    """
    tmp, path = Path(tmp), Path(path)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def link_folder(src: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Make ``path`` a folder of hard links to the files of folder ``src`` (copies where the file
    system has no hard links), atomically (:func:`atomic_folder`); the files are read-only
    content, shared, never written in place."""
    with atomic_folder(path) as tmp:
        for f in Path(src).iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
    return Path(path)


@contextmanager
def atomic_folder(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Write a folder atomically: yields a new empty temporary sibling of ``path``; when the block
    ends without an exception it is renamed to ``path``, and on an exception it is deleted.

    Args:
        path: the folder to write.
        replace: replace an existing ``path`` (default).  With False an existing ``path`` is kept
            and the new folder discarded (for concurrent writers of the same content, e.g. two
            processes converting the same model).

    Example::

        with atomic_folder(out / "final") as tmp:
            model.save_pretrained(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if replace or not path.exists():
            try:
                replace_folder(tmp, path)
            except OSError:
                if replace or not path.exists():  # not a lost race with another writer: a real error
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_output_path(path: str | os.PathLike, kind: str = "file") -> None:
    """Fail before any work when ``path`` cannot be written as a ``kind`` ("file" or "folder"):
    it exists as the other kind, or its nearest existing ancestor is a file or not writable.

    Raises:
        ValueError: naming the path and the problem.
    """
    path = Path(path).expanduser()
    if path.exists() and (path.is_dir() if kind == "file" else not path.is_dir()):
        raise ValueError(f"{path} exists and is {'a folder' if kind == 'file' else 'not a folder'}; choose another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{path} exists and is not writable; choose another path or change its permissions")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot create {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot create {path}: {parent} is not writable")


def lock_output_folder(folder: str | os.PathLike):
    """Take the lock of an output folder (``<folder>/.anchored.lock``, created with the folder):
    a second command writing into the same folder fails at once instead of both writing the same
    files.  The lock is an OS file lock (``filelock``): it is released when the returned object is
    released or garbage-collected, or when the process ends, however it ends (a killed run leaves
    no stale lock).

    Returns:
        the held ``filelock.FileLock``; keep a reference to it for as long as the folder is written.

    Raises:
        ValueError: another process holds the lock (naming the folder and what to do).
    """
    from filelock import FileLock, Timeout

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ValueError(
            f"another anchored command is writing into {folder} (it holds {folder / LOCK_FILE}): wait for it to finish, "
            "or choose another output folder"
        ) from None
    return lock
