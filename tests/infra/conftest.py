"""Fixtures of the infrastructure checks: the parsed Bicep templates and one checkov run.

These tests run in their own virtual environment (.venv-infra: checkov + pycep-parser + pytest)
because checkov pins old versions of packages the app also uses. Nothing here imports azure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

try:
    from pycep import BicepParser
except ImportError:  # the app's venv (pytest tests/ without --ignore): these run in .venv-infra only
    BicepParser = None
    collect_ignore_glob = ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


@dataclass(frozen=True)
class Resource:
    """One `resource` declaration of a template, its body unwrapped from any `if (...)` or `[for ...]`."""

    file: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    conditional: bool
    body: dict[str, Any]
    loop_over: str | None = None  # the array a `[for x in array: {...}]` resource iterates

    @property
    def properties(self) -> dict[str, Any]:
        return self.body.get("properties") or {}

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}: resource {self.symbol} ({self.type})"


@dataclass(frozen=True)
class Template:
    """A parsed .bicep file (pycep's JSON-like tree) with lookups the tests need."""

    file: Path
    tree: dict[str, Any]

    @property
    def parameters(self) -> dict[str, Any]:
        return self.tree.get("parameters") or {}

    @property
    def variables(self) -> dict[str, Any]:
        return {name: var["value"] for name, var in (self.tree.get("variables") or {}).items()}

    @property
    def outputs(self) -> dict[str, Any]:
        return self.tree.get("outputs") or {}

    @property
    def modules(self) -> dict[str, dict[str, Any]]:
        """Module symbol -> {"path": relative path, "params": {...}, "body": {...}}."""
        found = {}
        for symbol, module in (self.tree.get("modules") or {}).items():
            body, conditional, _ = _unwrap(module["config"])
            found[symbol] = {"path": module["detail"]["path"], "params": body.get("params") or {}, "body": body,
                             "conditional": conditional, "condition": module["config"].get("condition")}
        return found

    def resources(self) -> Iterator[Resource]:
        for symbol, declared in (self.tree.get("resources") or {}).items():
            body, conditional, loop_over = _unwrap(declared["config"])
            yield Resource(
                file=self.file,
                symbol=symbol,
                type=declared["type"],
                api_version=declared["api_version"],
                existing=bool(declared.get("existing")),
                conditional=conditional,
                body=body,
                loop_over=loop_over,
            )

    def resources_of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.resources() if r.type.lower() == resource_type.lower()]

    def resource(self, symbol: str) -> Resource:
        for candidate in self.resources():
            if candidate.symbol == symbol:
                return candidate
        raise KeyError(f"{self.file.relative_to(ROOT)} declares no resource named {symbol!r}")

    def decorator(self, parameter: str, kind: str) -> Any:
        for decorator in self.parameters[parameter].get("decorators") or []:
            if decorator["type"] == kind:
                return decorator["argument"]
        return None


def _unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], bool, str | None]:
    """(body, conditional, array looped over): pycep nests the body of `= if (cond) {...}` and of
    `= [for x in xs: {...}]` under config.config."""
    if ("condition" in config or "loop_type" in config) and isinstance(config.get("config"), dict):
        loop = (config.get("loop_type") or {}).get("detail") or {}
        return config["config"], config.get("condition") is not None, loop.get("array_name")
    return config, False, None


@pytest.fixture(scope="session")
def templates() -> dict[str, Template]:
    """Every .bicep file under infra/, parsed, keyed by its path relative to infra/."""
    parser = BicepParser()
    return {
        path.relative_to(INFRA).as_posix(): Template(path, parser.parse(text=path.read_text(encoding="utf-8")))
        for path in BICEP_FILES
    }


@pytest.fixture(scope="session")
def main(templates) -> Template:
    return templates["main.bicep"]


@pytest.fixture(scope="session")
def function_app(templates) -> Template:
    return templates["modules/function-app.bicep"]


@pytest.fixture(scope="session")
def site(function_app) -> Resource:
    (site,) = function_app.resources_of_type("Microsoft.Web/sites")
    return site


def dotted(expression: Any) -> str:
    """`a.b.c` from pycep's nested property_accessor operators; plain names and strings as they are."""
    if isinstance(expression, dict) and expression.get("operator", {}).get("type") == "property_accessor":
        operands = expression["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return expression


def module_param(main: Template, module_path: str, param: str) -> Any:
    for module in main.modules.values():
        if module["path"] == module_path:
            return dotted(module["params"][param])
    raise AssertionError(f"main.bicep does not use {module_path}")


@pytest.fixture(scope="session")
def all_resources(templates) -> list[Resource]:
    return [resource for template in templates.values() for resource in template.resources()]


@dataclass(frozen=True)
class CheckovRun:
    report: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def results(self) -> dict[str, list[dict[str, Any]]]:
        return self.report.get("results") or {}

    @property
    def summary(self) -> dict[str, Any]:
        return self.report.get("summary") or {}


@pytest.fixture(scope="session")
def checkov_run() -> CheckovRun:
    """One `checkov --framework bicep -d infra` for the session (a few seconds on 2 cores)."""
    checkov = Path(sys.executable).with_name("checkov")
    if not checkov.exists():
        pytest.fail(f"checkov is not installed next to {sys.executable}: run `make test-infra`")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
    completed = subprocess.run(
        [str(checkov), "--framework", "bicep", "-d", str(INFRA), "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    if isinstance(report, list):  # one entry per framework; only bicep was asked for
        report = next(entry for entry in report if entry.get("check_type") == "bicep")
    return CheckovRun(report=report, stdout=completed.stdout, stderr=completed.stderr)
