"""Writing files safely, without torch: atomic writes, file sets written as a unit, output paths checked first.

* :func:`atomic_write_bytes` / :func:`atomic_write_text`: the data goes to a temporary file in the target's
  directory, is flushed to disk (``fsync``) and renamed over the target, so a reader sees the old file or the
  new one, never half of one; a full disk or a kill leaves the old file as it was. The new file's mode is what
  ``open(path, "w")`` would give: ``0o666`` less the umask for a new file, the old file's mode on overwrite.
* :func:`atomic_write_files`: several files as one set (a CSV and its sidecars): all are written under temporary
  names first; only when every one is on disk are they renamed, the last one given last. Readers key on that
  last file (the CSV): once a new one is visible, so are its new sidecars. A crash between the renames can leave
  new sidecars beside the old CSV, never a new CSV beside old or missing sidecars.
* :func:`check_outputs`: every output path of a command checked before any work starts: writable, not a
  directory (or a directory where one is wanted), not one of the command's inputs, not another of its outputs.

File-system failures come out as one-line :class:`DefdropError` messages that name the path.
"""
from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Mapping, Sequence, Union

from payoffs.errors import DefdropError

PathLike = Union[str, os.PathLike]
Paths = Union[PathLike, Sequence[PathLike], None]

_NAME_ROOM = 200  # a temporary name is ".<name>.<8 hex>.tmp": keep it under NAME_MAX (255)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _stage(path: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``path``, flushed to disk; returns the temporary path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)  # overwrite: keep the old file's mode, as open() would
    except OSError:
        mode = None
    for _ in range(100):
        tmp = path.parent / f".{path.name[:_NAME_ROOM]}.{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 and no chmod: the kernel applies the umask, as it does for open(path, "w").
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"no free temporary name beside {path}")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _sync_dir(directory: Path) -> None:
    """Make the renames in ``directory`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_files(files: Sequence[tuple[PathLike, bytes]]) -> list[Path]:
    """Write ``[(path, data), ...]`` as one set: all staged, then renamed in the given order, the last one last.

    Give the file readers key on (the CSV) last. If any file cannot be written, none is replaced and no
    temporary file is left. Returns the paths written.
    """
    targets = [Path(p) for p, _ in files]
    seen: dict[str, Path] = {}
    for target in targets:
        other = seen.setdefault(os.path.realpath(target), target)
        if other is not target:
            raise DefdropError(f"{other} and {target} are the same file; one write would overwrite the other")
    staged: list[tuple[Path, Path]] = []
    current = targets[0] if targets else Path(".")
    try:
        for target, (_, data) in zip(targets, files):
            current = target
            staged.append((_stage(target, data), target))
        for tmp, target in staged:
            current = target
            os.replace(tmp, target)
    except OSError as exc:
        raise DefdropError(f"cannot write {current}: {_why(exc)}") from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)  # left only when something failed
    for directory in dict.fromkeys(t.parent for t in targets):
        _sync_dir(directory)
    return targets


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory, fsync and rename.

    Readers see the old file or the new one, never half a file; on failure (a full disk) the old file is kept.
    """
    atomic_write_files([(path, data)])


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded (UTF-8 by default)."""
    atomic_write_bytes(path, text.encode(encoding))


# --------------------------------------------------------------------------- output checks
def _as_list(value: Paths) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value if v is not None]


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` (itself excluded) that exists, absolute."""
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    return parent


def _probe(directory: Path) -> None:
    """Create and remove a file in ``directory``: the one test that also holds for root, read-only mounts and
    immutable directories (``os.access`` says yes to root)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".defdrop-probe-")
    os.close(fd)
    os.unlink(name)


def _check_writable_place(label: str, path: Path) -> None:
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise DefdropError(f"{label} {path}: cannot be created, {ancestor} is not a directory")
    try:
        _probe(ancestor)
    except OSError as exc:
        raise DefdropError(f"{label} {path}: cannot write in {ancestor} ({_why(exc)})") from None


def check_outputs(files: Mapping[str, Paths] | None = None, *, dirs: Mapping[str, Paths] | None = None,
                  inputs: Mapping[str, Paths] | None = None) -> None:
    """Refuse, with one line, outputs that would fail or destroy something; call before any work starts.

    ``files`` and ``dirs`` map a label (what the user calls it, e.g. ``--out``) to the path(s) a command will
    write, as files or as directories; ``inputs`` map labels to the files it reads. Each output must be
    creatable (its nearest existing ancestor a directory the process can write in), a file output must not be
    a directory and a directory output not a file; no output may be one of the inputs, and no two outputs the
    same path. ``None`` entries are skipped. Nothing is created (a probe file is made and removed).
    """
    outs = [(label, p, False) for label, v in (files or {}).items() for p in _as_list(v)]
    outs += [(label, p, True) for label, v in (dirs or {}).items() for p in _as_list(v)]
    ins = [(label, p) for label, v in (inputs or {}).items() for p in _as_list(v)]
    for i, (label, path, is_dir) in enumerate(outs):
        for in_label, in_path in ins:
            if _same_file(path, in_path):
                raise DefdropError(f"{label} {path} is the input {in_label} {in_path}; writing it would destroy "
                                   f"the input (choose another output path)")
        for other_label, other, _ in outs[:i]:
            if _same_file(path, other):
                raise DefdropError(f"{other_label} {other} and {label} {path} are the same file; one would "
                                   f"overwrite the other (choose another output path)")
        if is_dir:
            if path.exists() and not path.is_dir():
                raise DefdropError(f"{label} {path} is a file, not a directory")
            if path.is_dir():
                try:
                    _probe(path)
                except OSError as exc:
                    raise DefdropError(f"{label} {path}: cannot write in it ({_why(exc)})") from None
                continue
        elif path.is_dir():
            raise DefdropError(f"{label} {path} is a directory; give a file name")
        _check_writable_place(label, path)

