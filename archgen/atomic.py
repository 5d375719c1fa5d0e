"""Writing files and folders all or nothing: the one writer every command that writes goes through.

What a user can rely on, whatever the disk, the signals or the target:
- A file is produced whole before the target is touched: in memory (a ``memfd``, behind a path with
  the suffix a framework's writer demands) where the OS has them, so a framework writer that aborts
  on a full disk (HDF5, TorchScript's C++) never meets one; it is checked there too (``check``).
- It then goes to a temporary file created exclusively (``O_EXCL | O_NOFOLLOW``, a random short name
  ``.archgen-PID-RANDOM.tmp``) in the target's real folder, is written through, fsynced, given the
  mode and owner of the file it replaces, and renamed over it: a reader sees the old file or the new.
- A symlink as the target is followed (the file it names is replaced, the link stays); a device, FIFO
  or socket (``/dev/null``, ``/dev/stdout``) is written in place, never replaced or read; a folder, a
  block device, a FIFO no process reads, and a file with other hard links (which a rename would detach
  from them) are refused with ``OutputError``.
- Folders (a SavedModel) and sets of files (``emit --all``) are staged in a folder beside the target
  and swapped in with one ``renameat2(RENAME_EXCHANGE)``, so an interruption never loses both.
- Temporaries of processes that no longer run (SIGKILL, power loss) are swept before the next write
  into the same folder; every other failure removes its own on the way out.
OS errors (a full or read-only disk) propagate as ``OSError`` naming the target, for the CLI to map
to exit codes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .errors import OptionError

TEMP_PREFIX = ".archgen-"
_TEMP_NAME = re.compile(r"^\.?archgen-(\d+)-[0-9a-f]+\.(tmp|old)")
_CHUNK = 1 << 20


class OutputError(OptionError):
    """The target cannot be written as asked (a folder, a block device, a FIFO with no reader): exit 2."""


# -- the target ---------------------------------------------------------------------------------------------


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _mode_for_new() -> int:
    return 0o666 & ~_umask()


class _Target:
    """Where bytes for ``output`` go: a regular file's real path (replaced), or a stream (written in place)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        try:
            st: os.stat_result | None = os.stat(output)
        except FileNotFoundError:
            st = None
        except OSError as exc:  # ELOOP, ENOTDIR, EACCES, ENAMETOOLONG: the CLI names them
            raise OSError(exc.errno, exc.strerror, str(output)) from None
        self.stat = st
        self.stream = st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode))
        if st is not None and not self.stream:
            if stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{output}: is a folder, not a file")
            if not stat.S_ISREG(st.st_mode):
                kind = (
                    "block device"
                    if stat.S_ISBLK(st.st_mode)
                    else "socket"
                    if stat.S_ISSOCK(st.st_mode)
                    else "special file"
                )
                raise OutputError(f"{output}: is a {kind}; archgen writes regular files, character devices and pipes")
            if st.st_nlink > 1:
                raise OutputError(
                    f"{output}: has {st.st_nlink} hard links; replacing it would detach it from the others "
                    "(remove the other links or write to another name)"
                )
        # A symlink is followed: the file it names is replaced and the link stays (a dangling one is created).
        self.path = output if self.stream else Path(os.path.realpath(output))
        if not self.stream and not self.path.parent.is_dir():
            raise OSError(errno.ENOENT, "No such file or directory", str(output.parent))

    def mode(self) -> int:
        return self.stat.st_mode & 0o7777 if self.stat is not None else _mode_for_new()


def check_output(output: Path, *, folder: bool = False) -> None:
    """Refuse, before any work, a target that could not be written: a folder (a file, for ``folder``), a
    block device, a FIFO with no reader, a missing or unwritable folder (a probe file is created
    exclusively there and removed)."""
    if folder:
        parent = _real_folder(output).parent
    else:
        target = _Target(output)
        if target.stream:  # opened only to write: a reader of a FIFO would take a test open for its end
            return
        parent = target.path.parent
    sweep(parent)
    fd, probe = _create_temp(parent, "")
    os.close(fd)
    os.unlink(probe)


def _open_stream(path: Path) -> int:
    """A device or pipe opened for writing without blocking on a FIFO no process reads (refused instead)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OutputError(f"{path}: is a FIFO that no process reads") from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.set_blocking(fd, True)
    return fd


# -- temporaries --------------------------------------------------------------------------------------------


def _temp_name(suffix: str) -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}"


def _create_temp(folder: Path, suffix: str) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        path = folder / _temp_name(suffix)
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(folder)) from None
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def is_temporary(name: str) -> bool:
    """Whether a file name is one of archgen's temporaries (which ``list`` and ``emit --all`` ignore)."""
    return _TEMP_NAME.match(name) is not None


def sweep(folder: Path) -> list[Path]:
    """Remove the temporaries in ``folder`` of archgen processes that no longer run; returns them."""
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        found = _TEMP_NAME.match(name)
        if found is None or _alive(int(found.group(1))):
            continue
        path = folder / name
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT and SIGTERM held back while a few renames that belong together run."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a folder; the rename is done
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- staging a file where a writer can make it --------------------------------------------------------------


@contextlib.contextmanager
def _staged(suffix: str, fallback_folder: Path, memory: bool = True, real_size: int | None = None) -> Iterator[Path]:
    """A path ending in ``suffix`` for a writer to fill: in memory (a memfd, reached through a symlink in a
    private temporary folder) where the OS offers one and ``memory``, else a temporary beside the target.

    ``real_size``: the writer needs a real file, not a link (HDF5 resolves links and cannot resolve a
    memfd's), of about this many bytes: staged in /dev/shm where that has room, else beside the target
    once its filesystem is seen to have room (HDF5 crashes the interpreter on a disk that fills up while
    it writes, so a full one is reported before it starts)."""
    if real_size is not None:
        memory = False
        fallback_folder = _room_for(real_size, fallback_folder)
    fd, folder, link = _memory_file(suffix) if memory else (-1, None, None)
    try:
        if link is not None:
            yield link
            return
        sweep(fallback_folder)
        handle, path = _create_temp(fallback_folder, suffix)
        os.close(handle)
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        if fd >= 0:
            os.close(fd)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _free(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _room_for(size: int, folder: Path) -> Path:
    """Where a real file of about ``size`` bytes fits: /dev/shm (memory) if it has room, else ``folder``;
    ENOSPC if neither has."""
    needed = size + size // 10 + (1 << 20)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and _free(shm) >= needed:
        return shm
    if _free(folder) >= needed:
        return folder
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))


def _memory_file(suffix: str) -> tuple[int, Path | None, Path | None]:
    """(memfd, private folder, path ending in ``suffix`` that names the memfd), or (-1, None, None)."""
    memfd = getattr(os, "memfd_create", None)
    fds = Path(f"/proc/{os.getpid()}/fd")
    if memfd is None or not fds.is_dir():
        return -1, None, None
    sweep(Path(tempfile.gettempdir()))
    fd, folder = -1, None
    try:
        fd = memfd("archgen", getattr(os, "MFD_CLOEXEC", 1))
        folder = Path(tempfile.mkdtemp(prefix=f"archgen-{os.getpid()}-{secrets.token_hex(4)}.tmp"))
        link = folder / f"staged{suffix}"
        os.symlink(fds / str(fd), link)
        return fd, folder, link
    except OSError:  # no room for even a symlink in the temporary folder: stage beside the target
        if fd >= 0:
            os.close(fd)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return -1, None, None


def _copy(source: Path | bytes, fd: int) -> None:
    if isinstance(source, bytes):
        view = memoryview(source)
        while view:
            view = view[os.write(fd, view) :]
        return
    with open(source, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]


def _commit(source: Path | bytes, target: _Target, replace: bool = True) -> None:
    """``source``'s bytes into ``target``: written in place into a stream, else renamed over a regular file
    (``replace=False``: linked to its name, which fails if anything holds that name by then)."""
    if target.stream:
        fd = _open_stream(target.path)
        try:
            _copy(source, fd)
        finally:
            os.close(fd)
        return
    if isinstance(source, Path) and source.parent == target.path.parent and source.name.startswith(TEMP_PREFIX):
        fd, tmp = os.open(source, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC), source  # staged beside already
        owned = False
    else:
        fd, tmp = _create_temp(target.path.parent, ".tmp")
        owned = True
    try:
        try:
            if owned:
                _copy(source, fd)
            os.fchmod(fd, target.mode())
            if target.stat is not None and (target.stat.st_uid, target.stat.st_gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):  # only root may give a file away
                    os.fchown(fd, target.stat.st_uid, target.stat.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, target.path)
        else:
            os.link(tmp, target.path, follow_symlinks=False)
            tmp.unlink()
    except FileExistsError:
        raise OutputError(
            f"{target.output}: exists (appeared while it was being written); nothing was replaced"
        ) from None
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target.output)) from None
    finally:
        if owned:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    _fsync_folder(target.path.parent)


# -- the writers --------------------------------------------------------------------------------------------

_DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO)


@contextlib.contextmanager
def _framework_errors(output: Path) -> Iterator[None]:
    """A framework's own exception for a full or read-only disk (TensorFlow's ResourceExhaustedError for a
    SavedModel) becomes the OSError it stands for, naming the target."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:
        text = str(exc)
        for code in _DISK_ERRNOS:
            if os.strerror(code) in text:
                raise OSError(code, os.strerror(code), str(output)) from None
        raise


def replace_atomic(
    write: Callable[[Path], None],
    output: Path,
    suffix: str = ".tmp",
    check: Callable[[Path], None] | None = None,
    *,
    beside: bool = False,
    replace: bool = True,
    real_size: int | None = None,
) -> None:
    """``write`` a staged file ending in ``suffix``, ``check`` it, then put it in ``output``'s place.

    ``beside``: staged in the target's folder, not in memory (a spec whose relative ``extends`` must
    resolve as it will). ``replace=False``: an existing ``output`` is never replaced (OutputError).
    ``real_size``: the writer needs a real file (HDF5) of about this many bytes (see ``_staged``)."""
    target = _Target(output)
    if target.stat is not None and not replace:
        raise OutputError(f"{output}: exists; nothing was replaced")
    fallback = Path(tempfile.gettempdir()) if target.stream else target.path.parent
    with _staged(suffix, fallback, target.stream or not beside, real_size) as staged:
        with _framework_errors(output):
            write(staged)
        if check:
            check(staged)
        _commit(staged, target, replace)


def write_bytes(output: Path, data: bytes) -> None:
    """Write ``data`` to ``output`` all or nothing (or into a device or pipe)."""
    target = _Target(output)
    if not target.stream:
        sweep(target.path.parent)
    _commit(data, target)


def write_text(path: Path, text: str) -> None:
    """Write text (UTF-8, ``\\n`` line ends) all or nothing."""
    write_bytes(path, text.encode("utf-8"))


def current_bytes(path: Path, limit: int = 64 << 20) -> bytes | None:
    """A regular file's bytes, to tell whether a write would change it; None for anything else (a missing
    file, a device or pipe, which must never be read, a file larger than ``limit``)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit + 1)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the OS or filesystem cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EXDEV, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(staged: Path, target: Path) -> None:
    """Put the folder ``staged`` at ``target`` (a folder or nothing); the old one ends at ``staged``."""
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        return
    aside = target.with_name(_temp_name("").replace(".tmp", ".old"))
    with deferred_signals():  # between the two renames neither may be lost
        os.rename(target, aside)
        try:
            os.rename(staged, target)
        except OSError:
            os.rename(aside, target)
            raise
        os.rename(aside, staged)


def _real_folder(output: Path) -> Path:
    try:
        st = os.stat(output)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(output)) from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{output}: is a file, not a folder")
    real = Path(os.path.realpath(output))
    if not real.parent.is_dir():
        raise OSError(errno.ENOENT, "No such file or directory", str(output.parent))
    return real


def _make_stage(parent: Path) -> Path:
    sweep(parent)
    for _ in range(100):
        stage = parent / _temp_name("")
        try:
            stage.mkdir(mode=0o700)
            return stage
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent))


@contextlib.contextmanager
def _folder_swap(output: Path) -> Iterator[tuple[Path, Path]]:
    """(the real folder of ``output``, a staging folder beside it): the body fills the staging folder,
    which then takes the folder's mode and is swapped into place; on any error it is removed."""
    real = _real_folder(output)
    stage = _make_stage(real.parent)
    try:
        yield real, stage
        os.chmod(stage, real.stat().st_mode & 0o7777 if real.exists() else 0o777 & ~_umask())
        _fsync_folder(stage)
        _swap_in(stage, real)
        _fsync_folder(real.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, exc.filename or str(output)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def replace_tree_atomic(
    write: Callable[[Path], None], output: Path, check: Callable[[Path], None] | None = None
) -> None:
    """``write`` a folder (a SavedModel) staged beside ``output``, ``check`` it, then swap it into place."""
    with _folder_swap(output) as (_, stage):
        stage.rmdir()  # writers want to create the folder themselves
        with _framework_errors(output):
            write(stage)
        if check:
            check(stage)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)


def write_folder_files(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (names in ``folder`` -> bytes) all or nothing: the folder is staged beside itself
    (every other entry kept, by hard link where the filesystem allows) and swapped in at once."""
    with _folder_swap(folder) as (real, stage):
        for entry in os.scandir(real) if real.exists() else ():
            if entry.name in files or is_temporary(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.copytree(entry.path, stage / entry.name, symlinks=True, copy_function=_link_or_copy)
            else:
                _link_or_copy(entry.path, str(stage / entry.name))
        for name, data in files.items():
            old = real / name
            mode = old.stat().st_mode & 0o7777 if old.is_file() else _mode_for_new()
            fd = os.open(stage / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                _copy(data, fd)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
