"""OpenPGP public key files as apt reads them (``Signed-By``): their primary keys' and subkeys' fingerprints.

Pure functions, no gpg needed on the target. A vendor that rotates its signing subkey adds the new subkey to the
same file under the same primary key (InfluxData did in 2025), so the file's checksum changes while its primary
fingerprint, which the vendor publishes, stays: pinning that fingerprint survives a rotation, and apt itself checks
that each subkey is bound to the primary key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
PUBLIC_KEY, PUBLIC_SUBKEY = 6, 14


class OpenPGPError(ValueError):
    """A file that is not an OpenPGP public key file this module can read."""


@dataclass
class PublicKey:
    fingerprint: str
    subkeys: list[str] = field(default_factory=list)


def dearmor(data: bytes) -> bytes:
    """The binary packets of a key file: ASCII-armored blocks decoded (armor headers and checksums dropped), binary
    files as they are."""
    if not data.lstrip().startswith(b"-----BEGIN"):
        return data
    packets = b""
    inside, body = False, False
    encoded: list[str] = []
    for line in data.decode("ascii", errors="replace").splitlines():
        line = line.strip()
        if line == ARMOR_BEGIN:
            inside, body, encoded = True, False, []
        elif line == ARMOR_END and inside:
            try:
                packets += base64.b64decode("".join(encoded), validate=True)
            except binascii.Error as error:
                raise OpenPGPError(f"the armored key block is not valid base64 ({error})") from None
            inside = False
        elif inside and not body:
            body = not line  # armor headers ("Version: ...") end at an empty line
        elif inside and not line.startswith("="):  # "=XXXX" is the block's CRC24, not data
            encoded.append(line)
    if not packets:
        raise OpenPGPError(f"no complete {ARMOR_BEGIN} ... {ARMOR_END} block")
    return packets


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of every OpenPGP packet in ``data``, old and new packet formats (RFC 4880, section 4.2)."""
    found: list[tuple[int, bytes]] = []
    position = 0
    while position < len(data):
        header = data[position]
        if not header & 0x80:
            raise OpenPGPError(f"no OpenPGP packet at byte {position}")
        if header & 0x40:
            tag = header & 0x3F
            first = data[position + 1] if position + 1 < len(data) else 0
            if first < 192:
                length, start = first, position + 2
            elif first < 224:
                length, start = ((first - 192) << 8) + data[position + 2] + 192, position + 3
            elif first == 255:
                length, start = int.from_bytes(data[position + 2 : position + 6], "big"), position + 6
            else:
                raise OpenPGPError("a partial-length packet, which no public key file holds")
        else:
            tag = (header >> 2) & 0x0F
            size = (1, 2, 4, 0)[header & 0x03]
            if size == 0:
                length, start = len(data) - position - 1, position + 1
            else:
                length, start = int.from_bytes(data[position + 1 : position + 1 + size], "big"), position + 1 + size
        if start + length > len(data):
            raise OpenPGPError(f"a packet at byte {position} runs past the end of the file")
        found.append((tag, data[start : start + length]))
        position = start + length
    return found


def fingerprint(body: bytes) -> str:
    """The fingerprint of a public key or subkey packet's body: SHA-1 for version 4 keys, SHA-256 for version 6."""
    version = body[0] if body else 0
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    if version == 6:
        return hashlib.sha256(b"\x9b" + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    raise OpenPGPError(f"a version {version} key, whose fingerprint this module does not compute")


def public_keys(data: bytes) -> list[PublicKey]:
    """The primary keys of a key file, each with its subkeys' fingerprints, in file order."""
    keys: list[PublicKey] = []
    for tag, body in packets(dearmor(data)):
        if tag == PUBLIC_KEY:
            keys.append(PublicKey(fingerprint(body)))
        elif tag == PUBLIC_SUBKEY:
            if not keys:
                raise OpenPGPError("a subkey before any primary key")
            keys[-1].subkeys.append(fingerprint(body))
    if not keys:
        raise OpenPGPError("no public key in the file")
    return keys


def normalise_fingerprint(text: str) -> str:
    """A fingerprint as vendors print it (groups of four, spaces, lower case, ``0x``) in the form compared."""
    compact = "".join(text.split()).upper()
    return compact[2:] if compact.startswith("0X") else compact


def fingerprint_problem(keys: list[PublicKey], pinned: str) -> str | None:
    """Why a key file whose primary keys are ``keys`` must not be trusted as the key pinned by ``pinned``, or None.

    apt trusts every primary key of a Signed-By file, so the file must hold the pinned key and no other.
    """
    wanted = normalise_fingerprint(pinned)
    found = [key.fingerprint for key in keys]
    if found == [wanted]:
        return None
    if wanted in found:
        others = ", ".join(print_ for print_ in found if print_ != wanted)
        return (
            f"besides the pinned key {wanted} the file holds other primary keys ({others}), which apt would trust too"
        )
    return f"the file's primary key is {', '.join(found)}, not the pinned {wanted}"
