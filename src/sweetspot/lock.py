"""One writer per run folder: a lock that names its holder.

``with folder_lock(folder, "sweetspot run"):`` takes an exclusive ``flock`` on the folder and
writes the holder (pid, host, since, command) to ``FOLDER/.sweetspot.lock``. A second command on
the same folder stops at once with :class:`FolderInUse`, naming the holder. The kernel drops a
``flock`` when its process dies, so a lock left by a killed command is taken over; when the file
still names a process of this host that is gone, the new holder says so on stderr.
(``flock`` works across the hosts of a cluster only where the shared file system supports it,
as NFSv4 and Lustre do.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from sweetspot.errors import InputError

LOCK_NAME = ".sweetspot.lock"


class FolderInUse(InputError):
    """Another command holds the folder's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}" + (
        f": {holder['command']}" if holder.get("command") else ""
    )


def _read(info: Path) -> dict:
    try:
        holder = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike, command: str = "", *, beside: bool = False
) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block: a ``flock`` on the folder itself, its holder
    written to ``FOLDER/.sweetspot.lock`` and removed when the block ends. A folder created to
    be locked is removed again if the block left it empty, so a command that fails on bad input
    leaves the file system as it was. With ``beside``
    the lock is a file next to the folder (``.NAME.sweetspot.lock``): for an output that is
    replaced whole, such as a trained model. Re-entrant in one process: a command that calls
    another's code on the same folder takes it once."""
    folder = Path(folder)
    created: list[Path] = []
    if beside:
        created = [p for p in folder.parents if not p.exists()]
        folder.parent.mkdir(parents=True, exist_ok=True)
        info = folder.parent / f".{folder.name}{LOCK_NAME}"
        fd = os.open(info, os.O_RDWR | os.O_CREAT, 0o666)
    else:
        created = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        info = folder / LOCK_NAME
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    key = str(info.resolve())
    if key in _HELD:
        os.close(fd)
        yield info
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(info)
            raise FolderInUse(
                "this folder is in use by another sweetspot command ("
                + (_describe(holder) if holder else "holder unknown")
                + "); wait for it to finish, or use another folder",
                file=str(folder),
            ) from None
        old = _read(info)
        host = socket.gethostname()
        pid = old.get("pid")
        mine = old.get("host") == host and isinstance(pid, int) and pid != os.getpid()
        if mine and not _alive(pid):
            print(
                f"sweetspot: taking over the lock of {folder} left by a process that is "
                f"gone ({_describe(old)})",
                file=sys.stderr,
            )
        holder = {
            "pid": os.getpid(),
            "host": host,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command,
        }
        info.write_text(json.dumps(holder) + "\n", encoding="utf-8")
        _HELD.add(key)
        try:
            yield info
        finally:
            _HELD.discard(key)
            info.unlink(missing_ok=True)  # before the lock goes: a new holder writes its own
    finally:
        os.close(fd)  # releases the flock
        for p in created:  # folders made only to be locked, left empty: as if never touched
            try:
                p.rmdir()
            except OSError:
                break


_HELD: set[str] = set()
