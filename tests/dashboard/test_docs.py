"""docs/keys.md names every binding id (the ids a [keys] table may remap), and nothing else."""
from __future__ import annotations

import re

from milo_tui.app import all_binding_ids
from tests.conftest import ROOT


def test_keys_md_lists_every_action_id():
    text = (ROOT / "docs" / "keys.md").read_text()
    documented = set()
    for row in re.findall(r"^\| [^|]* \| ([^|]*) \|", text, re.M):
        documented |= set(re.findall(r"`([a-z_][a-z_.0-9]*)`", row))
    assert documented == all_binding_ids()
