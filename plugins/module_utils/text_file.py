"""Read and replace one text file on the target for a module, failing the module with the path in every message."""

from __future__ import annotations

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


def write_atomically(module: Any, path: str, text: str, new_file_mode: int | None = None) -> None:
    """Write ``text`` to a temporary file next to ``path``, flush it to disk and rename it over ``path``.

    With ``new_file_mode``, a file that does not exist yet is created with that mode first: atomic_move gives a new
    file the umask's mode, and a placeholder makes it keep this one instead.
    """
    temporary, placeholder = None, False
    try:
        if new_file_mode is not None and not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, new_file_mode))
            placeholder = True
        temporary = write_temporary(path, text.encode("utf-8"))
        module.atomic_move(temporary, path, unsafe_writes=module.params.get("unsafe_writes", False))
    except Exception as error:
        if temporary is not None:
            module.cleanup(temporary)
        if placeholder and os.path.isfile(path) and os.path.getsize(path) == 0:
            os.unlink(path)
        module.fail_json(msg=f"cannot write {path}: {to_native(error)}", path=path)
