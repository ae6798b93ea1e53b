"""Atomic file writes and JSON conversion. Atomic writes: a write that is killed or fails leaves the previous file intact and no
partial file behind, so a cache or result is never half-written and then trusted."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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
