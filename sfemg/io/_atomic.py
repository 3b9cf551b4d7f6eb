"""Write files so that a crash never leaves a damaged or half-written file.

All writers go through :func:`atomic_path` (HDF5 through :func:`atomic_h5`): they work
on a temporary file in the target's folder and replace the target with ``os.replace``
only after it is closed and flushed to disk. Killing the process at any point leaves either the old file or the new
one, never a mixture; a temporary file that a killed process left behind is removed by the
next write of the same file (:func:`_remove_abandoned`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import h5py

from ..errors import SfemgInputError

__all__ = ["atomic_h5", "atomic_path", "writable_target"]


def _read_umask():
    """The process's umask (set and set back: read once, at import, before any worker
    thread could create a file meanwhile)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _default_mode(path):
    """Permissions for the finished file: the existing file's, else 0o666 less the umask
    (mkstemp creates 0o600, which would hide results from colleagues)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(path, *, force=True, copy_existing=False, expected_bytes=0):
    """A temporary path beside ``path`` that replaces it when the block succeeds.

    The temporary file is flushed to disk, given ordinary permissions and renamed over
    ``path`` with ``os.replace``; on any exception it is removed and ``path`` is left as
    it was.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    force : bool
        Allow replacing an existing file.
    copy_existing : bool
        Start from a copy of the existing file (for updates in place).
    expected_bytes : float
        About how much the block will write: with the copy, refused at once if the
        folder's disk has not that much free (a full disk mid-write makes HDF5 fail
        messily, or crash: h5py issue 914). Running out all the same is a one-line error.

    Yields
    ------
    pathlib.Path
        The temporary file to write.
    """
    path = writable_target(path, force=force)
    _remove_abandoned(path)
    needed = expected_bytes + (path.stat().st_size if copy_existing else 0)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:  # (some network and FUSE file systems cannot say: the write will tell)
        free = float("inf")
    if needed > free:
        raise SfemgInputError(f"{path}: needs about {_size(needed)}, and its disk has {_size(free)} free")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{_stem(path)}.{socket.gethostname()}.{os.getpid()}.",
                                        suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise SfemgInputError(f"{path}: cannot write beside it ({exc.strerror})") from None
    tmp = Path(tmp_name)
    try:
        if copy_existing:
            _file_system(path, shutil.copyfile, path, tmp)
        try:
            yield tmp
        except OSError as exc:  # (h5py's message, errno or not)
            if exc.errno not in _DISK_FULL and not any(s in str(exc) for s in _DISK_FULL_TEXT):
                raise
            raise SfemgInputError(f"{path}: cannot be written (its disk is full)") from None
        _file_system(path, _finish, tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


#: How long a temporary file of a process that no longer runs is left alone, s (a file
#: system shared by hosts of one name, or by containers, cannot tell their processes apart).
ABANDONED_AFTER_S = 600.0


def _stem(path):
    """The part of ``path``'s name its temporary files carry: its first 80 bytes, whole
    characters (the host and pid made a long name too long for the file system, whose
    limit is in bytes)."""
    name = os.fsencode(path.name)[:80]
    return os.fsdecode(name.decode("utf-8", "ignore").encode()) if len(name) == 80 else path.name


def _remove_abandoned(path):
    """Remove the temporary files that a killed writer left beside ``path``
    (``.<name>.<host>.<pid>.<random>.tmp``): of a process of this host that no longer
    runs, untouched for :data:`ABANDONED_AFTER_S`. (SIGKILL, a power cut or the OOM
    killer gives no chance to clean up; a copy of a large file was left for ever.)"""
    host, stem = socket.gethostname(), _stem(path)
    for tmp in path.parent.glob(f".{glob.escape(stem)}.*.tmp"):
        writer = tmp.name[len(stem) + 2:-len(".tmp")].rsplit(".", 2)
        if len(writer) != 3 or writer[0] != host or not writer[1].isdecimal():
            continue
        try:
            os.kill(int(writer[1]), 0)
            continue  # (it runs)
        except PermissionError:
            continue  # (it runs, another user's)
        except (ProcessLookupError, OverflowError):
            pass
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > ABANDONED_AFTER_S:
                tmp.unlink()


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


def _size(n_bytes):
    """``n_bytes`` in kB, MB or GB, for a message."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes / 1e3:.1f} kB"


def _finish(tmp, path):
    """Flush ``tmp`` to disk, give it an existing ``path``'s permissions and owner (as far
    as this process may) or ordinary ones, rename it over ``path`` and flush the rename."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, _default_mode(path))
    if path.exists():
        st = path.stat()
        with contextlib.suppress(OSError):  # (only root may give a file away)
            os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # (a folder cannot be opened so everywhere)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _file_system(path, step, *args):
    """``step(*args)``, a file-system step of writing ``path``; its refusal (full, quota,
    permissions) is a one-line error, not a traceback. (The caller's own writes are not
    wrapped: an error there may be a bug.)"""
    try:
        step(*args)
    except OSError as exc:
        raise SfemgInputError(f"{path}: cannot be written ({exc.strerror or exc})") from None


def writable_target(path, *, force=True):
    """The file ``path`` will be written to, checked before any work is done for it.

    A symbolic link is followed (the file it points to is replaced, the link kept), for
    every writer of the package; the folder must exist and be writable, an existing
    target must be a regular, writable file (by its permission bits too: root is not
    let through a read-only one) and may be replaced only with ``force``.

    Parameters
    ----------
    path : str or os.PathLike
    force : bool
        Allow an existing file.

    Returns
    -------
    pathlib.Path
        ``path``, or the file its link points to.

    Raises
    ------
    SfemgInputError
    """
    if not str(path):
        raise SfemgInputError("output path is empty")
    path = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    if path.is_dir():
        raise SfemgInputError(f"{path} is a folder, not a file")
    if path.exists() and not path.is_file():
        raise SfemgInputError(f"{path} is not a regular file")
    if path.exists() and not force:
        raise SfemgInputError(f"{path} exists; use --force (force=True) to overwrite it")
    folder = path.parent
    if not folder.is_dir():
        raise SfemgInputError(f"{path}: folder {folder} does not exist")
    if not _writable(folder, os.W_OK | os.X_OK):
        raise SfemgInputError(f"{path}: folder {folder} is not writable")
    if path.exists() and not _writable(path, os.W_OK):
        raise SfemgInputError(f"{path} is read-only; write the results elsewhere (-o)")
    return path


def _writable(path, mode):
    """Whether this process may write ``path`` and its permission bits allow anyone to:
    a read-only file or folder (a locked git-annex object, say) stays so for root too,
    whom ``os.access`` lets write anything."""
    return os.access(path, mode) and bool(path.stat().st_mode & 0o222)


@contextlib.contextmanager
def atomic_h5(path, *, mode="w", force=False, expected_bytes=0):
    """Open ``path`` for writing through a temporary file that replaces it on success.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or update.
    mode : {"w", "a"}
        ``"w"`` creates a new file (refused if ``path`` exists unless ``force``);
        ``"a"`` updates an existing file: its content is copied first, so the original
        stays intact until the update is complete.
    force : bool
        Allow ``mode="w"`` to replace an existing file.
    expected_bytes : float
        About how much will be written (:func:`atomic_path`).

    Yields
    ------
    h5py.File
        The open temporary file.
    """
    path = Path(path)
    if mode not in ("w", "a"):
        raise ValueError(f"mode must be 'w' or 'a', not {mode!r}")
    if mode == "a" and not path.is_file():
        raise SfemgInputError(f"{path}: no such file")
    with atomic_path(path, force=force or mode == "a", copy_existing=mode == "a",
                     expected_bytes=expected_bytes) as tmp:
        with h5py.File(tmp, "a" if mode == "a" else "w") as h5:
            yield h5
