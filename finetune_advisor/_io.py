"""Atomic file writes and JSON conversion. Atomic writes: a write that is killed or fails leaves the previous file intact and no
partial file behind, so a cache or result is never half-written and then trusted."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping


CACHE_ENV = "FINETUNE_ADVISOR_CACHE"          # root of the package's cache (references, the network note)


def cache_root() -> Path:
    """``$FINETUNE_ADVISOR_CACHE`` when set, else platformdirs' user cache dir for
    ``finetune-advisor`` (e.g. ``~/.cache/finetune-advisor``). Not created here."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("finetune-advisor"))


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder (``"a
    character device"``, ``"a FIFO"``, ...); None otherwise. A symlink is followed.

    >>> special_file_kind("/dev/null"), special_file_kind("/nonexistent")
    ('a character device', None)
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success fsync it and rename it over ``path``.

    The new file keeps the permissions of the file it replaces, else the umask's default
    (mkstemp's 0600 would hide a shared cache or report). A symlink is written through (its
    target is replaced, the link kept); a device, FIFO or socket at ``path`` is refused with a
    :class:`~finetune_advisor.exceptions.ConfigError`, never replaced by a regular file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_open(p) as fh:
    ...     _ = fh.write("done")
    >>> p.read_text()
    'done'
    """
    path = Path(os.path.realpath(path))      # through a symlink: the link stays, its target is written
    kind = special_file_kind(path)
    if kind is not None:
        from .exceptions import ConfigError
        raise ConfigError(f"cannot write {path}: it is {kind}, not a regular file", path=path,
                          hint="give the path of a regular file (or a new one)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        perms = path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        perms = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:       # named after the file asked for, not the temp name
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # a full disk fails a write or the fsync, whose error names no file: name the one asked for
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and exc.filename in (None, tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


# errno values that say a path cannot be written here: the user's disk or permissions, not a bug
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def write_error(exc: BaseException) -> str | None:
    """The one line for an OSError that says a named path cannot be written (a full disk, a
    read-only file system, no permission), with the fix; None for any other error.

    >>> write_error(OSError(errno.ENOSPC, "No space left on device", "/x/report.html"))
    'cannot write /x/report.html: no space left on device (free some space, or write elsewhere)'
    >>> write_error(OSError(errno.ENOSPC, "No space left on device")) is None     # no path to name
    True
    """
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS or not exc.filename:
        return None
    path = os.fsdecode(exc.filename)
    reason = (exc.strerror or os.strerror(exc.errno)).lower()
    verb = "write"
    if exc.errno in (errno.EACCES, errno.EPERM) and os.path.exists(path) and not os.access(path, os.R_OK):
        verb = "read"           # the same errno for a file this user may not open at all
    try:
        in_cache = Path(path).resolve().is_relative_to(cache_root().resolve())
    except (OSError, ValueError, ImportError):
        in_cache = False
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if in_cache:
        fix = f"free some space, or set ${CACHE_ENV} to another folder" if full else \
            f"set ${CACHE_ENV} to a folder you can write"
    elif full:
        fix = "free some space, or write elsewhere"
    else:
        fix = "check its permissions, or choose a path in a folder you can write"
    return f"cannot {verb} {path}: {reason} ({fix})"


class NewPaths:
    """Those of ``paths`` that do not exist yet, and the folders above them that do not either:
    what a call is about to create, so that :meth:`remove` can take it away again when the call
    fails its checks. What existed before is never touched, nor a folder that holds anything else.

    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> new = NewPaths(base / "out" / "run", base / "out" / "run" / "tune.db")
    >>> (base / "out" / "run").mkdir(parents=True); _ = (base / "out" / "run" / "tune.db").write_text("")
    >>> new.remove(); list(base.iterdir())
    []
    """

    def __init__(self, *paths: str | os.PathLike):
        self.paths: list[Path] = []
        for p in map(Path, paths):
            p = Path(os.path.abspath(p))
            while not os.path.lexists(p) and p not in self.paths and p != p.parent:
                self.paths.append(p)
                p = p.parent

    def remove(self) -> None:
        """Remove the files, then the folders (deepest first) once empty; errors are ignored."""
        for p in sorted(self.paths, key=lambda q: len(q.parts), reverse=True):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()                     # only when empty
                elif os.path.lexists(p):
                    p.unlink()


@contextlib.contextmanager
def removed_on_failure(*paths: str | os.PathLike, keep: Callable[[], bool] | None = None) -> Iterator[None]:
    """Run the block; when it raises, remove what it created of ``paths`` (:class:`NewPaths`),
    unless ``keep()`` says it now holds something worth keeping."""
    new = NewPaths(*paths)
    try:
        yield
    except BaseException:
        if keep is None or not _safely(keep):
            new.remove()
        raise


def _safely(keep: Callable[[], bool]) -> bool:
    try:
        return bool(keep())
    except Exception:  # noqa: BLE001 -- cannot tell: keep it
        return True


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types for ``obj``: numpy scalars and arrays, tuples, paths and dataclasses
    converted; NaN and infinities become None (JSON has neither).

    >>> import math
    >>> to_jsonable({"a": (1, 2.5, math.nan), "p": Path("x")})
    {'a': [1, 2.5, None], 'p': 'x'}
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj))
    if hasattr(obj, "tolist"):            # numpy scalars and arrays, torch tensors
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    return str(obj)
