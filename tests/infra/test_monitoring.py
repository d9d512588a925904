"""What operators see: diagnostic settings to Log Analytics, the alert rules and their queries, the saved
queries, and that the queries read the events shared/telemetry.py sends (names and dimensions)."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import INFRA, ROOT, Template, dotted, module_param

TELEMETRY_PY = ROOT / "shared" / "telemetry.py"
QUERIES = INFRA / "queries"
WORKSPACE = "monitoring.outputs.logAnalyticsWorkspaceId"


def telemetry_constant(name: str) -> Any:
    for node in ast.parse(TELEMETRY_PY.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"shared/telemetry.py no longer defines {name}")


def evaluate(expression: Any, template: Template, parameters: dict[str, str]) -> str:
    """The text of a query expression: loadTextContent, replace and string() over parameters."""
    if isinstance(expression, str):  # pycep writes a parameter reference as its bare name
        return parameters.get(expression, expression)
    function = expression["function"]
    arguments = function["parameters"]
    if function["type"] == "load_text_content":
        return (template.file.parent / arguments["file_path"]).read_text(encoding="utf-8")
    if function["type"] == "replace":
        return evaluate(arguments["original_string"], template, parameters).replace(
            evaluate(arguments["old_string"], template, parameters), evaluate(arguments["new_string"], template, parameters))
    if function["type"] == "string":
        return parameters[dotted(arguments["value_to_convert"])]
    raise AssertionError(f"{template.file.name}: cannot evaluate {function['type']}()")


def properties_read(query: str) -> set[str]:
    return set(re.findall(r"Properties\.(\w+)", query))


# --- diagnostic settings ---------------------------------------------------------------------------


def diagnostic_settings(template: Template) -> dict[str, dict]:
    """scope symbol -> {"workspace": ..., "categories": {...}} of every diagnostic setting in a template."""
    found = {}
    for setting in template.resources_of_type("Microsoft.Insights/diagnosticSettings"):
        properties = setting.properties
        assert not setting.conditional, setting.where()
        found[setting.body["scope"]] = {
            "workspace": properties["workspaceId"],
            "categories": {log["category"] for log in properties["logs"] if log["enabled"] is True},
        }
    return found


@pytest.mark.parametrize("module, scope, scope_type, categories", [
    ("modules/keyvault.bicep", "vault", "Microsoft.KeyVault/vaults", {"AuditEvent"}),
    ("modules/storage.bicep", "blobService", "Microsoft.Storage/storageAccounts/blobServices",
     {"StorageRead", "StorageWrite", "StorageDelete"}),
    ("modules/storage.bicep", "queueService", "Microsoft.Storage/storageAccounts/queueServices",
     {"StorageWrite", "StorageDelete"}),
    ("modules/function-app.bicep", "site", "Microsoft.Web/sites", {"FunctionAppLogs"}),
])
def test_resource_logs_go_to_log_analytics(templates, main, module, scope, scope_type, categories):
    template = templates[module]
    settings = diagnostic_settings(template)
    assert settings[scope] == {"workspace": "logAnalyticsWorkspaceId", "categories": categories}
    assert template.resource(scope).type == scope_type
    assert module_param(main, module, "logAnalyticsWorkspaceId") == WORKSPACE


def test_key_vault_audit_goes_to_its_own_table(templates):
    (setting,) = templates["modules/keyvault.bicep"].resources_of_type("Microsoft.Insights/diagnosticSettings")
    assert setting.properties["logAnalyticsDestinationType"] == "Dedicated"  # AZKVAuditLogs, not AzureDiagnostics


# --- alerts ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alerts(templates) -> Template:
    return templates["modules/alerts.bicep"]


ALERT_PARAMETERS = {"rejectedOrFailedPercent": "5", "runHours": "4", "poisonQueueName": "export-chunks-poison",
                    "poisonPoisonQueueName": "export-chunks-poison-poison"}


@pytest.fixture(scope="module")
def rules(alerts) -> dict[str, dict]:
    """Alert rule name -> {"query": evaluated text, ...} from the rules the scheduled-query rules loop over."""
    (resource,) = alerts.resources_of_type("Microsoft.Insights/scheduledQueryRules")
    assert resource.loop_over == "rules"
    return {rule["name"]: {**rule, "query": evaluate(rule["query"], alerts, ALERT_PARAMETERS)}
            for rule in alerts.variables["rules"]}


def test_alerts_are_off_without_an_email_and_on_with_one(main):
    (module,) = [m for m in main.modules.values() if m["path"] == "modules/alerts.bicep"]
    assert module["conditional"]
    assert module["condition"] == {"operator": {"type": "not", "operands": {"bool_value": {
        "function": {"type": "empty", "parameters": {"item_to_test": "alertEmail"}}}}}}
    assert main.parameters["alertEmail"]["default"] == ""
    assert module_param(main, "modules/alerts.bicep", "alertEmail") == "alertEmail"


def test_the_action_group_emails_the_alert_address(alerts):
    (group,) = alerts.resources_of_type("Microsoft.Insights/actionGroups")
    (receiver,) = group.properties["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail"
    assert group.properties["enabled"] is True and len(group.properties["groupShortName"]) <= 12


def test_every_rule_queries_the_workspace_every_15_minutes_and_mails_the_group(alerts):
    (resource,) = alerts.resources_of_type("Microsoft.Insights/scheduledQueryRules")
    properties = resource.properties
    assert properties["scopes"] == ["logAnalyticsWorkspaceId"]
    assert (properties["evaluationFrequency"], properties["windowSize"]) == ("PT15M", "PT15M")
    (criterion,) = properties["criteria"]["allOf"]
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == ("Count", "GreaterThan", 0)
    assert dotted(criterion["query"]) == "rule.query"
    assert [dotted(g) for g in properties["actions"]["actionGroups"]] == ["actionGroup.id"]
    assert properties["enabled"] is True


def test_the_four_alerts_are_there(rules):
    assert set(rules) == {"export-run-failed", "export-rows-rejected-or-failed", "export-run-too-long",
                          "export-poison-messages"}


def test_failed_run_alert_reads_the_run_event_status(rules):
    query = rules["export-run-failed"]["query"]
    assert 'Name == "ExportRunFinished"' in query and 'tostring(Properties.status) == "failed"' in query


def test_rejected_or_failed_share_alert_uses_the_percentage_parameter(rules, main):
    query = rules["export-rows-rejected-or-failed"]["query"]
    assert 'Name == "ExportRunFinished"' in query
    assert "toint(Properties.rejected) + toint(Properties.failed)" in query
    assert "100.0 * RejectedOrFailed / Rows > 5" in query
    assert main.parameters["alertRejectedOrFailedPercent"]["default"] == 5
    assert module_param(main, "modules/alerts.bicep", "rejectedOrFailedPercent") == "alertRejectedOrFailedPercent"


def test_long_run_alert_uses_the_hours_parameter(rules, main):
    query = rules["export-run-too-long"]["query"]
    assert 'Name == "ExportRunFinished"' in query and "todouble(Properties.durationSeconds) > 4 * 3600.0" in query
    assert module_param(main, "modules/alerts.bicep", "runHours") == "alertRunHours"


def test_poison_alert_counts_messages_put_into_the_poison_queues(rules, main):
    query = rules["export-poison-messages"]["query"]
    assert query.lstrip().split("\n")[2].strip() == "StorageQueueLogs"
    assert 'OperationName == "PutMessage"' in query
    assert '"/export-chunks-poison/messages"' in query and '"/export-chunks-poison-poison/messages"' in query
    assert module_param(main, "modules/alerts.bicep", "poisonQueueName") == "storage.outputs.exportPoisonQueueName"
    assert module_param(main, "modules/alerts.bicep", "poisonPoisonQueueName") == "storage.outputs.exportPoisonPoisonQueueName"


def test_every_placeholder_in_the_alert_queries_is_filled(rules):
    for name, rule in rules.items():
        assert "__" not in rule["query"], f"{name}: {re.findall(r'__[A-Z_]+__', rule['query'])} left unfilled"


# --- saved queries and the events they read ---------------------------------------------------------


def test_the_query_pack_saves_the_run_queries(templates, main):
    queries = templates["modules/queries.bicep"]
    saved = {q["key"]: evaluate(q["body"], queries, {}) for q in queries.variables["queries"]}
    assert set(saved) == {"run-history", "failure-rates", "failed-chunks"}
    assert 'Name == "ExportRunFinished"' in saved["run-history"]
    assert 'Name == "ExportRunFinished"' in saved["failure-rates"]
    assert 'Name == "ExportChunkFailed"' in saved["failed-chunks"]
    assert "queries" in {symbol for symbol, m in main.modules.items() if m["path"] == "modules/queries.bicep"}


def test_queries_read_only_what_the_app_sends():
    run_event, run_dimensions = telemetry_constant("RUN_FINISHED"), set(telemetry_constant("RUN_FINISHED_DIMENSIONS"))
    chunk_event, chunk_dimensions = telemetry_constant("CHUNK_FAILED"), set(telemetry_constant("CHUNK_FAILED_DIMENSIONS"))
    assert (run_event, chunk_event) == ("ExportRunFinished", "ExportChunkFailed")
    for path in sorted(QUERIES.glob("*.kql")):
        query = path.read_text(encoding="utf-8")
        events = set(re.findall(r'(?<!\w)Name == "(\w+)"', query))
        assert events <= {run_event, chunk_event}, f"{path.name} reads unknown events {events}"
        allowed = set().union(*({run_event: run_dimensions, chunk_event: chunk_dimensions}[e] for e in events)) if events else set()
        assert properties_read(query) <= allowed, f"{path.name} reads {properties_read(query) - allowed}, never sent"
    assert {"exportId", "runId", "status", "rows", "rejected", "failed", "durationSeconds", "rateLimited"} <= run_dimensions


def test_every_kql_file_is_used_by_a_template():
    used = "\n".join(p.read_text(encoding="utf-8") for p in INFRA.rglob("*.bicep"))
    for path in QUERIES.glob("*.kql"):
        assert f"'../queries/{path.name}'" in used, f"{path.name} is not loaded by any template"


# --- Key Vault name ---------------------------------------------------------------------------------


def test_the_key_vault_name_changes_with_its_seed_and_keeps_the_original_without_one(main):
    assert main.variables["keyVaultName"] == {"operator": {"type": "conditional", "operands": {
        "condition": {"function": {"type": "empty", "parameters": {"item_to_test": "keyVaultSeed"}}},
        "true_value": "kv-${resourceToken}",
        "false_value": "kv-${uniqueString(resourceToken, keyVaultSeed)}"}}}
    assert main.parameters["keyVaultSeed"]["default"] == ""
    assert module_param(main, "modules/keyvault.bicep", "name") == "keyVaultName"
