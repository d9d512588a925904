"""checkov's Azure policies pass on infra/ with zero failures; every skip is inline, on its resource, with a reason."""
from __future__ import annotations

import re

from tests.infra.conftest import BICEP_FILES, ROOT

SKIP_COMMENT = re.compile(r"#checkov:skip=(?P<id>[A-Z0-9_]+):(?P<reason>.*)$")

# Policies this project relies on checkov to confirm; if checkov stops evaluating them (a template
# moved, a resource became invisible to it), "zero failures" would prove nothing.
MUST_PASS = {
    ("CKV_AZURE_3", "Microsoft.Storage/storageAccounts"),  # HTTPS only
    ("CKV_AZURE_44", "Microsoft.Storage/storageAccounts"),  # TLS 1.2
    ("CKV_AZURE_34", "Microsoft.Storage/storageAccounts/blobServices/containers"),  # no public containers
    ("CKV_AZURE_42", "Microsoft.KeyVault/vaults"),  # recoverable
    ("CKV_AZURE_110", "Microsoft.KeyVault/vaults"),  # purge protection
    ("CKV_AZURE_111", "Microsoft.KeyVault/vaults"),  # soft delete
    ("CKV_AZURE_14", "Microsoft.Web/sites"),  # HTTPS only
    ("CKV_AZURE_15", "Microsoft.Web/sites"),  # TLS 1.2
    ("CKV_AZURE_71", "Microsoft.Web/sites"),  # managed identity
    ("CKV_AZURE_56", "Microsoft.Web/sites/config"),  # Easy Auth on (modules/easy-auth.bicep)
    ("CKV_AZURE_70", "Microsoft.Web/sites/config"),  # Easy Auth requires HTTPS
}
# CKV_AZURE_78 (ftpsState "Disabled") is skipped on the site: ARM rejects ftpsState on a Flex Consumption
# site, which has no FTP endpoint (tests/infra/test_templates.py checks the property stays absent).


def _describe(check: dict) -> str:
    return f"{check['check_id']} {check['check_name']} on {check['resource']} ({check['file_path']})"


def test_checkov_finds_no_failed_check(checkov_run):
    failed = checkov_run.results.get("failed_checks") or []
    assert not failed, "checkov failed checks:\n" + "\n".join(_describe(c) for c in failed)
    assert checkov_run.summary.get("parsing_errors") == 0, checkov_run.results.get("parsing_errors")


def test_checkov_ran_every_check_without_crashing(checkov_run):
    # A check that raises is logged and silently left out of the report.
    assert "Failed to run check" not in checkov_run.stderr, checkov_run.stderr[-3000:]


def test_checkov_evaluated_the_policies_we_rely_on(checkov_run):
    passed = {(c["check_id"], c["resource"].rsplit(".", 1)[0]) for c in checkov_run.results.get("passed_checks") or []}
    assert MUST_PASS <= passed, f"not passed (or not evaluated): {sorted(MUST_PASS - passed)}"


def _skip_comments() -> list[tuple[str, str, str]]:
    found = []
    for path in BICEP_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                found.append((path.relative_to(ROOT).as_posix(), match["id"], match["reason"].strip()))
    return found


def test_every_skip_names_a_real_reason():
    for file, check_id, reason in _skip_comments():
        assert len(reason.split()) >= 8, f"{file}: skip of {check_id} needs a real reason, got {reason!r}"


def test_every_skip_comment_takes_effect_and_no_skip_comes_from_elsewhere(checkov_run):
    """Skips only as inline comments; a comment checkov ignores (wrong ID, wrong place) is a lie."""
    skipped = checkov_run.results.get("skipped_checks") or []
    by_checkov = {("infra" + c["file_path"], c["check_id"]) for c in skipped}
    in_source = {(file, check_id) for file, check_id, _ in _skip_comments()}
    assert by_checkov == in_source, (
        f"skip comments checkov ignored: {sorted(in_source - by_checkov)}; "
        f"skips without an inline comment: {sorted(by_checkov - in_source)}"
    )
    for check in skipped:
        assert check["check_result"].get("suppress_comment"), f"skip without reason: {_describe(check)}"
