"""sensorstack.iot.apt_signing_key run by Ansible on this machine against a key server on loopback: the key file a
user gets, a rotated file let through under the same primary key, and every file that must not be trusted refused
with the key in place left as it was."""

from __future__ import annotations

import hashlib
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .ansible_module import run_module

KEYS = Path(__file__).resolve().parents[1] / "unit" / "data" / "openpgp"
VENDOR = "E59E 4B3D 3EDD BE32 08E4  99FC 07C3 1312 D6A6 AD00"
SERVED = {
    "/vendor.asc": (KEYS / "vendor.asc").read_bytes(),
    # The same key in another encoding: the file changes as a vendor's does when it adds a subkey.
    "/rotated.gpg": (KEYS / "vendor.gpg").read_bytes(),
    "/other.asc": (KEYS / "other.asc").read_bytes(),
    "/two-keys.asc": (KEYS / "vendor.asc").read_bytes() + (KEYS / "other.asc").read_bytes(),
}


@pytest.fixture(scope="module")
def key_server() -> Iterator[str]:
    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = SERVED.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def place(key_server: str, path: str, dest: Path, check: bool = False, **args: Any) -> dict[str, Any]:
    options = {"url": key_server + path, "dest": str(dest), "fingerprint": VENDOR} | args
    return run_module("sensorstack.iot.apt_signing_key", options, check=check)


def test_the_key_is_written_once_and_a_rotated_file_replaces_it(key_server: str, tmp_path: Path) -> None:
    dest = tmp_path / "vendor.asc"

    first = place(key_server, "/vendor.asc", dest)
    assert first["changed"] is True, first.get("msg")
    assert dest.read_bytes() == SERVED["/vendor.asc"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert first["subkeys"] == ["17F367A885C8EFB1FC046C814AE0092E9581C062"]
    assert place(key_server, "/vendor.asc", dest)["changed"] is False

    rotated_check = place(key_server, "/rotated.gpg", dest, check=True)
    assert rotated_check["changed"] is True
    assert dest.read_bytes() == SERVED["/vendor.asc"]
    assert place(key_server, "/rotated.gpg", dest)["changed"] is True
    assert dest.read_bytes() == SERVED["/rotated.gpg"]


@pytest.mark.parametrize(
    ("path", "args", "message"),
    [
        ("/other.asc", {}, "the file's primary key is 09BE57A400AF01D3459B3171032B4F7694BDC65A, not the pinned"),
        ("/two-keys.asc", {}, "holds other primary keys (09BE57A400AF01D3459B3171032B4F7694BDC65A)"),
        ("/vendor.asc", {"checksum": "sha256:" + "0" * 64}, "the file's sha256 is"),
        ("/missing.asc", {}, "cannot download the key from"),
    ],
    ids=["another key", "a second key", "checksum pinned too", "no file"],
)
def test_a_file_that_must_not_be_trusted_is_refused_and_the_key_in_place_kept(
    key_server: str, tmp_path: Path, path: str, args: dict[str, Any], message: str
) -> None:
    dest = tmp_path / "vendor.asc"
    assert place(key_server, "/vendor.asc", dest)["changed"] is True

    for check in (True, False):
        result = place(key_server, path, dest, check=check, **args)
        assert result.get("failed") is True
        assert message in result["msg"]
    assert dest.read_bytes() == SERVED["/vendor.asc"]


def test_a_pinned_checksum_that_matches_lets_the_file_through(key_server: str, tmp_path: Path) -> None:
    checksum = "sha256:" + hashlib.sha256(SERVED["/vendor.asc"]).hexdigest()
    result = place(key_server, "/vendor.asc", tmp_path / "vendor.asc", checksum=checksum)
    assert result["changed"] is True, result.get("msg")


def test_a_checksum_alone_pins_the_key_and_nothing_at_all_is_refused(key_server: str, tmp_path: Path) -> None:
    checksum = "sha256:" + hashlib.sha256(SERVED["/vendor.asc"]).hexdigest()
    pinned = place(key_server, "/vendor.asc", tmp_path / "vendor.asc", fingerprint="", checksum=checksum)
    assert pinned["changed"] is True, pinned.get("msg")
    assert pinned["fingerprint"] == "E59E4B3D3EDDBE3208E499FC07C31312D6A6AD00"
    unpinned = place(key_server, "/vendor.asc", tmp_path / "other.asc", fingerprint="")
    assert unpinned.get("failed") is True
    assert "give fingerprint or checksum" in unpinned["msg"]
    assert not (tmp_path / "other.asc").exists()
