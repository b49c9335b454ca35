"""Docs stay true: every environment setting read by config/settings.py is documented in README.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme():
    source = (ROOT / "config" / "settings.py").read_text()
    names = set(re.findall(r'env\.(?:str|bool|int|float|list|json|db|email_url)\(\s*"([A-Z_]+)"', source))
    assert len(names) > 20
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert missing == []


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
