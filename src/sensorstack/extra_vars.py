"""``-e`` values as ansible-playbook reads them, for runs that keep them off every command line.

Each ``-e`` is one layer, and later layers win, as in ansible-playbook:
- ``@file`` stays a file, which ansible-playbook reads itself (so vault-encrypted files and ``!vault`` values work);
  a path is not a secret, so it may go on the command line;
- a YAML or JSON mapping (a value starting with ``{``) is parsed;
- ``key=value`` pairs, several to one ``-e`` and quoted as Ansible quotes them, stay strings: ``pw=0777`` is the
  text 0777, not the number 511.

Errors never repeat a value: it may be a password.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleError
from ansible.parsing.splitter import parse_kv

ExtraVarsLayer = Mapping[str, Any] | Path


def parse_extra_vars(values: Sequence[str]) -> list[ExtraVarsLayer]:
    """The layers of the ``-e`` values, in order; ValueError names a bad one by its position."""
    return [_layer(value, f"-e number {position}") for position, value in enumerate(values, start=1)]


def _layer(value: str, where: str) -> ExtraVarsLayer:
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        if not path.is_file():
            raise ValueError(f"-e {value}: no such file")
        return path.resolve()
    if value.lstrip().startswith(("{", "[")):
        try:
            loaded = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"{where} starts like YAML or JSON but is not valid YAML (value not shown)") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{where} must be a mapping of variables (value not shown)")
        return loaded
    try:
        pairs = parse_kv(value)
    except AnsibleError:
        raise ValueError(f"{where} is not key=value: check its quotes (value not shown)") from None
    if not pairs or "_raw_params" in pairs:
        raise ValueError(
            f"{where} is not key=value, @FILE or a YAML/JSON mapping; a value with spaces needs quotes, as in "
            "key='a b' (value not shown)"
        )
    return pairs


def extra_var(layers: Sequence[ExtraVarsLayer], name: str) -> Any:
    """The value the layers give ``name`` (None: none does). A file that is not plain YAML (vault-encrypted) is
    passed over: only ansible-playbook, with the vault password, reads it."""
    value = None
    for layer in layers:
        if isinstance(layer, Path):
            try:
                loaded = yaml.safe_load(layer.read_text())
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            layer = loaded if isinstance(loaded, dict) else {}
        value = layer.get(name, value)
    return value
