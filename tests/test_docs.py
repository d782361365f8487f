"""The configuration reference lists every setting, and the README keeps its two commands."""

from __future__ import annotations

import re
from pathlib import Path

from frontdesk.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_lists_every_setting() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(FRONTDESK_[A-Z0-9_]+)`", reference))
    settings = {f"FRONTDESK_{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "settings missing from docs/configuration.md"
    assert documented - settings == set(), "docs/configuration.md names unknown settings"


def test_readme_has_run_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    for marker in ("run-command", "test-command"):
        block = re.search(rf"<!-- {marker} -->\n```\n(.+?)\n```\n<!-- /{marker} -->", readme, re.S)
        assert block is not None, f"README.md lacks the {marker} block"
        assert block.group(1).startswith("python3 -m venv .venv && "), block.group(1)
