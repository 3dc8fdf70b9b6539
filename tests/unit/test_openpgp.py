"""Reading an apt signing key's fingerprints without gpg, checked against gpg's own reading of the same files.

tests/unit/data/openpgp holds public keys made for these tests with GnuPG 2.2 (no secret key kept):
vendor.asc/.gpg, an ed25519 primary key with one signing subkey (armored and binary), and other.asc, another
primary key. The fingerprints below are the ones `gpg --with-colons --show-keys` printed for them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.openpgp import (
    OpenPGPError,
    fingerprint_problem,
    normalise_fingerprint,
    packets,
    public_keys,
)

KEYS = Path(__file__).parent / "data" / "openpgp"
VENDOR = "E59E4B3D3EDDBE3208E499FC07C31312D6A6AD00"
VENDOR_SUBKEY = "17F367A885C8EFB1FC046C814AE0092E9581C062"
OTHER = "09BE57A400AF01D3459B3171032B4F7694BDC65A"


@pytest.mark.parametrize("name", ["vendor.asc", "vendor.gpg"])
def test_the_primary_key_and_its_subkey_read_as_gpg_reads_them(name: str) -> None:
    (key,) = public_keys((KEYS / name).read_bytes())
    assert key.fingerprint == VENDOR
    assert key.subkeys == [VENDOR_SUBKEY]


def test_a_file_with_two_primary_keys_lists_both_in_order() -> None:
    keys = public_keys((KEYS / "vendor.asc").read_bytes() + (KEYS / "other.asc").read_bytes())
    assert [key.fingerprint for key in keys] == [VENDOR, OTHER]


def test_the_pinned_key_alone_is_trusted() -> None:
    vendor = public_keys((KEYS / "vendor.asc").read_bytes())
    both = public_keys((KEYS / "vendor.asc").read_bytes() + (KEYS / "other.asc").read_bytes())
    other = public_keys((KEYS / "other.asc").read_bytes())
    printed = "E59E 4B3D 3EDD BE32 08E4  99FC 07C3 1312 D6A6 AD00"  # as vendors print it

    assert fingerprint_problem(vendor, printed) is None
    assert fingerprint_problem(vendor, "0x" + VENDOR.lower()) is None
    assert f"other primary keys ({OTHER}), which apt would trust too" in str(fingerprint_problem(both, printed))
    assert fingerprint_problem(other, printed) == f"the file's primary key is {OTHER}, not the pinned {VENDOR}"


def test_a_new_format_packet_header_reads_like_an_old_one() -> None:
    body = bytes([4]) + bytes(range(40))
    old = bytes([0x80 | (6 << 2) | 1]) + len(body).to_bytes(2, "big") + body
    new = bytes([0xC0 | 6, len(body)]) + body
    assert packets(old) == packets(new) == [(6, body)]
    expected = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    assert public_keys(new)[0].fingerprint == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<html>a login page</html>", "no OpenPGP packet at byte 0"),
        (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEaxO0\n", "no complete"),
        ((KEYS / "vendor.gpg").read_bytes()[:40], "runs past the end of the file"),
    ],
)
def test_what_is_no_key_file_is_refused_saying_why(data: bytes, message: str) -> None:
    with pytest.raises(OpenPGPError, match=message):
        public_keys(data)


def test_fingerprints_compare_whatever_their_spacing_and_case() -> None:
    assert normalise_fingerprint("24c9 75cb a61a 024e e1b6  3178 7c3d 5715 9fc2 f927") == (
        "24C975CBA61A024EE1B631787C3D57159FC2F927"
    )
