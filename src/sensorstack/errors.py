"""The failures a command-line entry point reports as one message instead of a traceback: bad input, the
environment (a port in use, an unreachable mirror, a missing file), and a tool it ran that failed (skopeo, docker,
gpg), whose own words are what the user needs to read."""

from __future__ import annotations

import subprocess

# OSError covers urllib's URLError and HTTPError, FileNotFoundError, TimeoutError and a port already in use.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError, subprocess.CalledProcessError)

# How much of a failed tool's error output the message repeats: its end, where tools say why.
_TOOL_OUTPUT_CHARACTERS = 2000


def describe(error: BaseException) -> str:
    """One message for a USER_ERRORS failure; for a tool that failed, its command, exit status and error output."""
    if isinstance(error, subprocess.CalledProcessError):
        command = error.cmd if isinstance(error.cmd, str) else " ".join(str(part) for part in error.cmd)
        output = error.stderr if error.stderr else error.output
        if isinstance(output, bytes):
            output = output.decode("utf-8", "replace")
        said = (output or "").strip()[-_TOOL_OUTPUT_CHARACTERS:]
        return f"{command} failed (exit status {error.returncode})" + (f":\n{said}" if said else "")
    return str(error)
