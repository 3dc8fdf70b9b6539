"""Read and replace one text file on the target for a module, failing the module with the path in every message."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from typing import Any

from ansible.module_utils.common.text.converters import to_native


def read_text(module: Any, path: str, undecodable: str | None = None) -> str | None:
    """The file's UTF-8 text, or None when it does not exist.

    ``undecodable`` is the message for a file that is not UTF-8, when the module can say more than the decoder.
    """
    if not os.path.exists(path):
        return None
    if not os.path.isfile(path):
        module.fail_json(msg=f"{path} exists and is not a regular file", path=path)
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except UnicodeDecodeError as error:
        module.fail_json(msg=undecodable or f"cannot read {path}: {to_native(error)}", path=path)
    except OSError as error:
        module.fail_json(msg=f"cannot read {path}: {to_native(error)}", path=path)
    return None  # not reached: fail_json exits


def write_temporary(path: str, data: bytes) -> str:
    """Write ``data`` to a new temporary file next to ``path`` (the same directory, so that a rename over ``path`` is
    atomic), flushed to disk, and return its path. Nothing is left behind when the write fails."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def write_replacement(path: str, data: bytes, mode: int | None = None, new_file_mode: int | None = None) -> str:
    """``data`` in a new temporary file next to ``path`` (write_temporary), with the owner and mode ``path`` is to
    have once the caller renames it over ``path`` (os.replace): the owner of the file it replaces, and ``mode`` when
    given, otherwise that file's mode, or for a new file ``new_file_mode`` or, without one, the umask's (as
    ansible.builtin.copy gives a new file: mkstemp made it 0600). A reader of ``path`` then sees the old file or the
    whole new one, never a partial, an empty or a more open one. Nothing is left behind when this fails.
    """
    temporary = write_temporary(path, data)
    try:
        if os.path.exists(path):
            current = os.stat(path)
            _chown_if_allowed(temporary, current.st_uid, current.st_gid)
            os.chmod(temporary, mode if mode is not None else current.st_mode & 0o7777)
        else:
            for_new_file = mode if mode is not None else new_file_mode
            os.chmod(temporary, for_new_file if for_new_file is not None else 0o666 & ~_umask())
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def write_atomically(
    module: Any, path: str, text: str | bytes, mode: int | None = None, new_file_mode: int | None = None
) -> None:
    """Replace ``path`` with ``text`` (UTF-8 when it is a str) in one rename, with the mode and owner
    write_replacement gives it. Where the file cannot be renamed over (a bind-mounted file: EBUSY, EXDEV), a module
    run with ``unsafe_writes`` writes it in place, as Ansible's atomic_move does. SELinux contexts are not carried
    over: the supported systems (Debian, Ubuntu) confine with AppArmor, which labels paths, not files."""
    temporary = None
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        temporary = write_replacement(path, data, mode, new_file_mode)
        try:
            os.replace(temporary, path)
        except OSError as error:
            if error.errno not in (errno.EBUSY, errno.EXDEV) or not module.params.get("unsafe_writes"):
                raise
            with open(path, "wb") as handle:
                handle.write(data)
    except OSError as error:
        module.fail_json(msg=f"cannot write {path}: {to_native(error)}", path=path)
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def _chown_if_allowed(path: str, uid: int, gid: int) -> None:
    """Give ``path`` this owner; a user who may not (not root) leaves it their own, as Ansible's atomic_move does."""
    with contextlib.suppress(PermissionError):
        os.chown(path, uid, gid)


def _umask() -> int:
    """The process's umask (reading it means setting it: set straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask
