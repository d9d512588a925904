"""Every .bicep file parses: the Bicep CLI is out of reach here, pycep-parser's grammar stands in."""
from __future__ import annotations

import pytest
from pycep import BicepParser

from tests.infra.conftest import BICEP_FILES, INFRA, ROOT


def test_the_templates_are_there():
    names = {path.relative_to(INFRA).as_posix() for path in BICEP_FILES}
    assert "main.bicep" in names
    assert len([n for n in names if n.startswith("modules/")]) >= 5, names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bicep_file_parses(path):
    tree = BicepParser().parse(text=path.read_text(encoding="utf-8"))
    assert tree.get("resources") or tree.get("modules"), f"{path.name} declares no resource or module"


def test_the_parser_rejects_a_broken_template():
    """Guards the check above: a syntax error must raise, not parse into an empty tree."""
    with pytest.raises(Exception):
        BicepParser().parse(text="resource broken 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name:\n}\n")


def test_modules_referenced_by_main_exist(templates):
    for symbol, module in templates["main.bicep"].modules.items():
        assert (INFRA / module["path"]).is_file(), f"main.bicep module {symbol} points at missing {module['path']}"
