"""Structural checks on the parsed templates: identity-only access, least-privilege roles, the
storage, Key Vault and function app settings the issue asks for, and app settings that match,
name for name, what the app reads (shared/settings.py) and binds to (function_app.py)."""
from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from tests.infra.conftest import INFRA, ROOT, Resource, dotted, module_param

SETTINGS_PY = ROOT / "shared" / "settings.py"
FUNCTION_APP_PY = ROOT / "function_app.py"

# Built-in role definition IDs, the same in every tenant.
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues"

# The app identity's roles: (role definition, scope) where the scope is (resource type, the parameter
# of role-assignments.bicep naming it). Read-only on segments; read/write on the state and deployment
# containers; the host's own containers and queues; one queue role per queue; tables on the account.
APP_IDENTITY_ROLES = {
    (STORAGE_BLOB_DATA_OWNER, (CONTAINER, "hostsContainerName")),
    (STORAGE_BLOB_DATA_OWNER, (CONTAINER, "secretsContainerName")),
    (STORAGE_BLOB_DATA_CONTRIBUTOR, (CONTAINER, "deploymentContainerName")),
    (STORAGE_BLOB_DATA_READER, (CONTAINER, "segmentsContainerName")),
    (STORAGE_BLOB_DATA_CONTRIBUTOR, (CONTAINER, "stateContainerName")),
    (STORAGE_QUEUE_DATA_CONTRIBUTOR, (QUEUE, "exportQueueName")),
    (STORAGE_QUEUE_DATA_CONTRIBUTOR, (QUEUE, "exportPoisonQueueName")),
    (STORAGE_QUEUE_DATA_CONTRIBUTOR, (QUEUE, "exportPoisonPoisonQueueName")),
    (STORAGE_QUEUE_DATA_CONTRIBUTOR, (QUEUE, "blobTriggerPoisonQueueName")),
    (STORAGE_TABLE_DATA_CONTRIBUTOR, ("Microsoft.Storage/storageAccounts", "storageAccountName")),
    (KEY_VAULT_SECRETS_OFFICER, ("Microsoft.KeyVault/vaults", "keyVaultName")),
    (MONITORING_METRICS_PUBLISHER, ("Microsoft.Insights/components", "applicationInsightsName")),
}

# What main.bicep passes for each scope parameter of role-assignments.bicep: the storage module's
# outputs, so the roles land on the containers and queues the storage module creates.
SCOPE_SOURCES = {
    "storageAccountName": "storage.outputs.name",
    "segmentsContainerName": "storage.outputs.segmentsContainerName",
    "stateContainerName": "storage.outputs.stateContainerName",
    "deploymentContainerName": "storage.outputs.deploymentContainerName",
    "hostsContainerName": "storage.outputs.hostsContainerName",
    "secretsContainerName": "storage.outputs.secretsContainerName",
    "exportQueueName": "storage.outputs.exportQueueName",
    "exportPoisonQueueName": "storage.outputs.exportPoisonQueueName",
    "exportPoisonPoisonQueueName": "storage.outputs.exportPoisonPoisonQueueName",
    "blobTriggerPoisonQueueName": "storage.outputs.blobTriggerPoisonQueueName",
    "keyVaultName": "keyVault.outputs.name",
    "applicationInsightsName": "monitoring.outputs.applicationInsightsName",
}

# Settings the templates set that the Functions host reads, not the app's code.
HOST_SETTINGS = {
    "AzureWebJobsStorage__credential",  # "managedidentity": identity-based host storage
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # telemetry (host and app) authenticates with the app's identity
}

# Ways to address identity-based storage that the app accepts but the templates do not use: they
# set the blob, queue and table service URIs (cloud-agnostic) instead of the account name.
UNUSED_STORAGE_ALTERNATIVES = {"AzureWebJobsStorage__accountName"}

# Anything that would mean a shared key or a key-bearing connection string.
KEY_MATERIAL = re.compile(
    r"AccountKey|DefaultEndpointsProtocol|SharedAccessSignature|SharedAccessKey|UseDevelopmentStorage"
    r"|WEBSITE_CONTENTAZUREFILECONNECTIONSTRING|APPINSIGHTS_INSTRUMENTATIONKEY",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------------------------
# Reading pycep trees and the app's sources


def functions_called(tree: Any) -> set[str]:
    """Names (pycep's snake_case) of every function called anywhere in a template tree."""
    found: set[str] = set()
    if isinstance(tree, dict):
        function = tree.get("function")
        if isinstance(function, dict) and "type" in function:
            found.add(function["type"])
        for value in tree.values():
            found |= functions_called(value)
    elif isinstance(tree, list):
        for value in tree:
            found |= functions_called(value)
    return found


def settings_the_app_reads() -> set[str]:
    """String arguments of every `get("NAME")` call in shared/settings.py."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS_PY.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def settings_module_constant(name: str) -> Any:
    for node in ast.parse(SETTINGS_PY.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"shared/settings.py no longer defines {name}")


def settings_field_default(field: str) -> Any:
    """The default of a field of the Settings dataclass (a literal)."""
    for node in ast.walk(ast.parse(SETTINGS_PY.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and getattr(statement.target, "id", None) == field:
                    return ast.literal_eval(statement.value)
    raise AssertionError(f"shared/settings.py: Settings has no field {field} with a literal default")


def binding_expressions() -> set[str]:
    """%NAME% app-setting references in function_app.py's trigger arguments."""
    return set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", FUNCTION_APP_PY.read_text(encoding="utf-8")))


def http_routes() -> dict[str, dict[str, str]]:
    """function_app.py's HTTP functions: {function name: {"route": ..., "auth_level": "ANONYMOUS" | ...}}."""
    routes = {}
    for node in ast.walk(ast.parse(FUNCTION_APP_PY.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef):
            continue
        calls = [d for d in node.decorator_list if isinstance(d, ast.Call)]
        names = [ast.literal_eval(d.args[0]) for d in calls if getattr(d.func, "attr", None) == "function_name"]
        for call in (d for d in calls if getattr(d.func, "attr", None) == "route"):
            arguments = {keyword.arg: keyword.value for keyword in call.keywords}
            level = arguments.get("auth_level")
            routes[names[0] if names else node.name] = {
                "route": ast.literal_eval(arguments["route"]),
                # func.AuthLevel.X; without one the app's http_auth_level (FunctionApp's default: FUNCTION)
                "auth_level": level.attr if isinstance(level, ast.Attribute) else "DEFAULT",
            }
    return routes


def function_names() -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(FUNCTION_APP_PY.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "function_name" and node.args:
            names.add(ast.literal_eval(node.args[0]))
    return names


# ---------------------------------------------------------------------------------------------
# Fixtures over the parsed templates


@pytest.fixture(scope="session")
def app_settings(site) -> dict[str, Any]:
    entries = site.properties["siteConfig"]["appSettings"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"an app setting is set twice: {names}"
    return {entry["name"]: entry["value"] for entry in entries}


@pytest.fixture(scope="session")
def storage_account(templates) -> Resource:
    (account,) = templates["modules/storage.bicep"].resources_of_type("Microsoft.Storage/storageAccounts")
    return account


# ---------------------------------------------------------------------------------------------
# Identity and roles


def test_the_app_runs_as_exactly_one_user_assigned_identity(site, templates):
    identity = site.body["identity"]
    assert identity["type"] == "UserAssigned", "a system-assigned identity would get no roles"
    assert list(identity["userAssignedIdentities"]) == ["'${identityId}'"]
    assert len(templates["modules/identity.bicep"].resources_of_type("Microsoft.ManagedIdentity/userAssignedIdentities")) == 1


def _role(rbac, assignment) -> str:
    definition = assignment.properties["roleDefinitionId"]["function"]
    assert definition["type"] == "subscription_resource_id", assignment.where()
    return rbac.variables[definition["parameters"]["resource_name_1"]]


def _app_assignments(rbac) -> list[Resource]:
    return [a for a in rbac.resources_of_type("Microsoft.Authorization/roleAssignments")
            if a.properties["principalId"] == "principalId"]


def test_the_identity_gets_exactly_the_listed_roles_each_on_its_container_queue_or_resource(templates, main):
    rbac = templates["modules/role-assignments.bicep"]
    granted = set()
    for assignment in _app_assignments(rbac):
        scope = rbac.resource(assignment.body["scope"])  # a resource symbol, never the resource group
        assert scope.existing, f"{assignment.where()}: scoped to {scope.symbol}, which this module does not look up"
        granted_role = (_role(rbac, assignment), (scope.type, scope.body["name"]))
        assert granted_role not in granted, f"{assignment.where()}: granted twice"
        granted.add(granted_role)
        assert assignment.properties["principalType"] == "ServicePrincipal", assignment.where()
        assert not assignment.conditional, f"{assignment.where()}: the app's roles are not optional"
        # The assignment's name (a GUID) is derived from its own scope, principal and role: unique, stable.
        name = assignment.body["name"]["function"]
        assert name["type"] == "guid", assignment.where()
        assert dotted(name["parameters"]["base_string"]) == f"{scope.symbol}.id", assignment.where()
        assert name["parameters"]["extra_string_1"] == "principalId", assignment.where()
    assert granted == APP_IDENTITY_ROLES
    assert module_param(main, "modules/role-assignments.bicep", "principalId") == "identity.outputs.principalId"


def test_role_scopes_are_the_resources_the_other_modules_create(main):
    for parameter, source in SCOPE_SOURCES.items():
        assert module_param(main, "modules/role-assignments.bicep", parameter) == source, parameter


def test_no_blob_or_queue_role_covers_the_whole_account(templates):
    """The account also holds Customer Insights' landing container and the code package: blob and queue
    roles go on single containers and queues; only the host's table role (monthly table names) is wider."""
    rbac = templates["modules/role-assignments.bicep"]
    for assignment in _app_assignments(rbac):
        scope = rbac.resource(assignment.body["scope"])
        if scope.type == "Microsoft.Storage/storageAccounts":
            assert _role(rbac, assignment) == STORAGE_TABLE_DATA_CONTRIBUTOR, assignment.where()


def test_every_role_assignment_says_why_in_a_comment_above_it(templates):
    lines = templates["modules/role-assignments.bicep"].file.read_text(encoding="utf-8").splitlines()
    declarations = [i for i, line in enumerate(lines) if re.match(r"resource \w+ 'Microsoft.Authorization/roleAssignments@", line)]
    assert declarations
    for index in declarations:
        comment = []
        for line in reversed(lines[:index]):
            if not line.startswith("//"):
                break
            comment.append(line)
        assert len(" ".join(comment).split()) >= 8, f"role-assignments.bicep line {index + 1}: no reason given above it"


def test_the_host_containers_and_queues_exist_before_the_host_starts(templates):
    storage = templates["modules/storage.bicep"]
    assert storage.variables["hostsContainerName"] == "azure-webjobs-hosts"
    assert storage.variables["secretsContainerName"] == "azure-webjobs-secrets"
    assert storage.variables["blobTriggerPoisonQueueName"] == "webjobs-blobtrigger-poison"
    containers = {r.body["name"] for r in storage.resources_of_type(CONTAINER)}
    queues = {r.body["name"] for r in storage.resources_of_type(QUEUE)}
    assert {"hostsContainerName", "secretsContainerName"} <= containers
    assert {"blobTriggerPoisonQueueName", "${exportQueueName}-poison-poison"} <= queues


def test_role_assignments_live_only_in_the_rbac_module(templates):
    for name, template in templates.items():
        if name != "modules/role-assignments.bicep":
            assert not template.resources_of_type("Microsoft.Authorization/roleAssignments"), name


def test_customer_insights_may_only_write_to_the_segments_container(templates):
    rbac = templates["modules/role-assignments.bicep"]
    others = [
        a for a in rbac.resources_of_type("Microsoft.Authorization/roleAssignments")
        if a.properties["principalId"] != "principalId"
    ]
    assert [a.symbol for a in others] == ["customerInsightsBlobWriter"]
    (writer,) = others
    assert writer.conditional, "only when a Customer Insights principal is given"
    role = rbac.variables[writer.properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]]
    assert role == STORAGE_BLOB_DATA_CONTRIBUTOR
    scope = rbac.resource(writer.body["scope"])
    assert scope.type == "Microsoft.Storage/storageAccounts/blobServices/containers"
    assert scope.body["name"] == "segmentsContainerName"


# ---------------------------------------------------------------------------------------------
# No keys anywhere


def test_no_key_or_connection_string_anywhere_in_the_templates(templates):
    for name, template in templates.items():
        as_text = json.dumps(template.tree)  # the parsed tree: comments are not part of it
        match = KEY_MATERIAL.search(as_text)
        assert not match, f"{name}: {match.group(0)} means key-based access"
        listing = sorted(f for f in functions_called(template.tree) if f.startswith("list"))
        assert not listing, f"{name} calls {listing}: list* functions return keys or SAS tokens"


def test_the_key_checks_would_catch_a_connection_string(templates):
    """Guards the test above against a pycep tree shape where nothing could ever match."""
    from pycep import BicepParser

    leaked = BicepParser().parse(
        text="resource s 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n  name: 'x'\n}\n"
        "output c string = 'DefaultEndpointsProtocol=https;AccountKey=${s.listKeys().keys[0].value}'\n"
        "output k string = listKeys(s.id, '2023-05-01').keys[0].value\n"
    )
    assert KEY_MATERIAL.search(json.dumps(leaked))
    assert any(f.startswith("list") for f in functions_called(leaked))


def test_storage_accepts_entra_id_only(storage_account):
    properties = storage_account.properties
    assert storage_account.body["kind"] == "StorageV2"
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"


# ---------------------------------------------------------------------------------------------
# Storage contents


def test_storage_has_the_containers_and_queues_the_app_uses(templates, main):
    storage = templates["modules/storage.bicep"]
    containers = {r.body["name"] for r in storage.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers")}
    assert containers == {"segmentsContainerName", "stateContainerName", "deploymentContainerName",
                          "hostsContainerName", "secretsContainerName"}
    queues = {r.body["name"] for r in storage.resources_of_type("Microsoft.Storage/storageAccounts/queueServices/queues")}
    # function_app.py's chunk_poison listens on "%EXPORT_QUEUE%-poison"; the host moves messages chunk_poison
    # fails on to "-poison-poison", and blobs segment_uploaded fails on to webjobs-blobtrigger-poison.
    assert queues == {"exportQueueName", "${exportQueueName}-poison", "${exportQueueName}-poison-poison",
                      "blobTriggerPoisonQueueName"}
    for container in storage.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers"):
        assert container.properties["publicAccess"] == "None", container.where()
    # Names: main.bicep's defaults are the app's defaults.
    assert main.parameters["segmentsContainerName"]["default"] == settings_field_default("segments_container")
    assert main.parameters["stateContainerName"]["default"] == settings_field_default("state_container")
    assert main.parameters["exportQueueName"]["default"] == settings_field_default("export_queue")


def test_blob_soft_delete_is_off_because_customer_insights_exports_fail_with_it(templates):
    (blob_service,) = templates["modules/storage.bicep"].resources_of_type("Microsoft.Storage/storageAccounts/blobServices")
    assert blob_service.properties["deleteRetentionPolicy"]["enabled"] is False


def test_the_event_grid_topic_watches_the_storage_account(templates, main):
    (topic,) = templates["modules/eventgrid.bicep"].resources_of_type("Microsoft.EventGrid/systemTopics")
    assert topic.properties["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert topic.properties["source"] == "storageAccountId"
    assert module_param(main, "modules/eventgrid.bicep", "storageAccountId") == "storage.outputs.id"


# ---------------------------------------------------------------------------------------------
# Key Vault and monitoring


def test_key_vault_uses_rbac_soft_delete_and_purge_protection(templates):
    (vault,) = templates["modules/keyvault.bicep"].resources_of_type("Microsoft.KeyVault/vaults")
    properties = vault.properties
    assert properties["enableRbacAuthorization"] is True, "access policies would bypass RBAC"
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert 7 <= properties["softDeleteRetentionInDays"] <= 90
    assert "accessPolicies" not in properties


def test_monitoring_accepts_entra_id_only(templates, app_settings):
    monitoring = templates["modules/monitoring.bicep"]
    (workspace,) = monitoring.resources_of_type("Microsoft.OperationalInsights/workspaces")
    (insights,) = monitoring.resources_of_type("Microsoft.Insights/components")
    assert workspace.properties["features"]["disableLocalAuth"] is True
    assert insights.properties["DisableLocalAuth"] is True
    assert dotted(insights.properties["WorkspaceResourceId"]) == "logAnalytics.id"
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"


# ---------------------------------------------------------------------------------------------
# Function app


def test_the_plan_is_flex_consumption_fc1_on_linux(function_app, site):
    (plan,) = function_app.resources_of_type("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.properties["reserved"] is True
    assert dotted(site.properties["serverFarmId"]) == "plan.id"
    assert site.body["kind"] == "functionapp,linux"


def test_the_site_runs_python_3_11_from_a_package_read_with_the_identity(site):
    config = site.properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == "${blobEndpoint}${deploymentContainerName}"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}


def test_instance_count_and_memory_are_parameters_passed_through(site, main):
    scale = site.properties["functionAppConfig"]["scaleAndConcurrency"]
    assert scale == {"maximumInstanceCount": "maximumInstanceCount", "instanceMemoryMB": "instanceMemoryMB"}
    for name in ("maximumInstanceCount", "instanceMemoryMB"):
        assert main.parameters[name]["type"] == "int"
        assert module_param(main, "modules/function-app.bicep", name) == name
    assert main.decorator("instanceMemoryMB", "allowed") == [512, 2048, 4096]


def test_the_site_is_https_only_and_sets_no_ftps_state(site):
    assert site.properties["httpsOnly"] is True
    site_config = site.properties["siteConfig"]
    assert site_config["minTlsVersion"] == "1.2"
    # ARM refuses siteConfig.ftpsState on a Flex Consumption site (code 51021): provisioning would stop.
    assert "ftpsState" not in site_config


def test_no_template_sets_ftps_state_anywhere(templates):
    for name, template in templates.items():
        assert "ftpsState" not in json.dumps(template.tree), name


def test_the_maximum_instance_count_respects_the_flex_minimum(main):
    # Flex Consumption: "The lowest maximum scale is currently 40. The highest currently supported value is 1000."
    assert main.decorator("maximumInstanceCount", "min_value") == 40
    assert main.decorator("maximumInstanceCount", "max_value") == 1000
    assert 40 <= main.parameters["maximumInstanceCount"]["default"] <= 1000


def test_flex_consumption_settings_the_platform_rejects_are_absent(app_settings):
    # Flex Consumption takes the runtime from functionAppConfig and refuses these settings.
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"} & set(app_settings)


# ---------------------------------------------------------------------------------------------
# App settings == what the app reads


def test_the_templates_set_every_setting_the_app_reads(app_settings):
    local_only = set(settings_module_constant("LOCAL_ONLY_SETTINGS"))
    platform = set(settings_module_constant("PLATFORM_SETTINGS"))
    expected = settings_the_app_reads() - local_only - platform - UNUSED_STORAGE_ALTERNATIVES
    missing = expected - set(app_settings)
    assert not missing, f"shared/settings.py reads {sorted(missing)}, which the templates never set"


def test_the_templates_set_no_setting_the_app_does_not_read(app_settings):
    unknown = set(app_settings) - settings_the_app_reads() - HOST_SETTINGS
    assert not unknown, f"templates set {sorted(unknown)}, which neither the app nor the host reads"


def test_local_only_and_platform_settings_stay_out_of_the_templates(app_settings):
    local_only = set(settings_module_constant("LOCAL_ONLY_SETTINGS"))
    platform = set(settings_module_constant("PLATFORM_SETTINGS"))
    assert "AzureWebJobsStorage" in local_only, "the connection-string setting must stay local"
    assert not (local_only | platform) & set(app_settings)


def test_the_allow_lists_are_still_needed():
    """Entries of the allow-lists above that the app starts reading must leave them."""
    reads = settings_the_app_reads()
    assert not HOST_SETTINGS & reads, "the app reads a host setting: drop it from HOST_SETTINGS"
    assert UNUSED_STORAGE_ALTERNATIVES <= reads, "the app stopped reading a storage alternative"


def test_host_storage_is_identity_based(app_settings, main):
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert app_settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert app_settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert app_settings["AzureWebJobsStorage__blobServiceUri"] == "blobEndpoint"
    assert app_settings["AzureWebJobsStorage__queueServiceUri"] == "queueEndpoint"
    # The host's diagnostic events go to tables; without the table URI it logs errors.
    assert app_settings["AzureWebJobsStorage__tableServiceUri"] == "tableEndpoint"
    assert module_param(main, "modules/function-app.bicep", "tableEndpoint") == "storage.outputs.tableEndpoint"


def test_app_setting_values_come_from_the_right_places(app_settings, main):
    assert app_settings["KEY_VAULT_URL"] == "keyVaultUri"
    assert module_param(main, "modules/function-app.bicep", "keyVaultUri") == "keyVault.outputs.uri"
    # App settings are strings: string(chunkRows).
    assert app_settings["CHUNK_ROWS"] == {"function": {"type": "string", "parameters": {"value_to_convert": "chunkRows"}}}
    assert module_param(main, "modules/function-app.bicep", "chunkRows") == "chunkRows"
    for setting, parameter in {
        "SEGMENTS_CONTAINER": "segmentsContainerName",
        "STATE_CONTAINER": "stateContainerName",
        "EXPORT_QUEUE": "exportQueueName",
        "EXPORT_SCHEDULE": "exportSchedule",
        "OMNISEND_API_URL": "omnisendApiUrl",
    }.items():
        assert app_settings[setting] == parameter, setting


def test_parameter_defaults_match_the_app_defaults(main):
    assert main.parameters["exportSchedule"]["default"] == settings_module_constant("DEFAULT_SCHEDULE")
    assert main.parameters["omnisendApiUrl"]["default"] == settings_module_constant("DEFAULT_OMNISEND_API_URL")
    assert main.parameters["chunkRows"]["default"] == settings_field_default("chunk_rows")
    # settings.py refuses CHUNK_ROWS outside 100..5000; the template must not allow what the app refuses.
    assert main.decorator("chunkRows", "min_value") == 100
    assert main.decorator("chunkRows", "max_value") == 5000


def test_every_binding_expression_in_function_app_is_an_app_setting(app_settings):
    if not FUNCTION_APP_PY.exists():
        pytest.skip("function_app.py is not in this checkout")
    missing = binding_expressions() - set(app_settings)
    assert not missing, f"function_app.py binds to %{'%, %'.join(sorted(missing))}% which no template sets"


# ---------------------------------------------------------------------------------------------
# Easy Auth


def test_easy_auth_is_deployed_only_with_a_client_id(function_app, main):
    (module,) = [m for m in function_app.modules.values() if m["path"] == "easy-auth.bicep"]
    assert module["conditional"] and module["condition"] == "authEnabled", "no authsettingsV2 without a client ID"
    assert function_app.variables["authEnabled"] == {
        "operator": {"type": "not", "operands": {"bool_value": {"function": {"type": "empty", "parameters": {"item_to_test": "authClientId"}}}}}
    }
    assert main.parameters["authClientId"]["default"] == "", "Easy Auth is off unless a client ID is given"
    assert not function_app.resources_of_type("Microsoft.Web/sites/config"), "authsettingsV2 only in easy-auth.bicep"
    assert dotted(module["params"]["siteName"]) == "site.name"


def test_easy_auth_returns_401_and_excludes_only_the_webhook_and_health(templates):
    (auth,) = templates["modules/easy-auth.bicep"].resources_of_type("Microsoft.Web/sites/config")
    assert auth.body["name"] == "authsettingsV2" and not auth.conditional
    properties = auth.properties
    assert properties["platform"]["enabled"] is True
    assert properties["identityProviders"]["azureActiveDirectory"]["enabled"] is True
    assert properties["identityProviders"]["azureActiveDirectory"]["registration"]["clientId"] == "authClientId"
    validation = properties["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    # Event Grid's webhook carries the blobs_extension key, probes carry nothing; everything else (the
    # API, openapi.json, a console at the root) stays behind Easy Auth. The health path follows host.json's
    # routePrefix and the health function's route: a change of either must move the exclusion with it.
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    prefix = ((host.get("extensions") or {}).get("http") or {}).get("routePrefix", "api").strip("/")
    route = http_routes()["health"]["route"] if FUNCTION_APP_PY.exists() else "health"
    health = "/" + "/".join(part for part in (prefix, route.strip("/")) if part)
    assert sorted(validation["excludedPaths"]) == sorted([health, "/runtime/webhooks/blobs"])
    assert properties["login"]["tokenStore"]["enabled"] is False, "no token store: nothing to keep secret"


def test_no_http_route_of_the_app_needs_a_function_key():
    if not FUNCTION_APP_PY.exists():
        pytest.skip("function_app.py is not in this checkout")
    routes = http_routes()
    # api: every call is authorised by the app itself, from the App Service Authentication principal and
    #   its app roles; with App Service Authentication off the app refuses every caller (the setting
    #   WEBSITE_AUTH_ENABLED, read as trust_client_principal). A key would add no refusal, only a key
    #   for the web console to handle.
    # health: excluded from App Service Authentication for probes, which carry nothing.
    # console: a browser opening a page has no key; App Service Authentication stands in front of it.
    assert {name: route["auth_level"] for name, route in routes.items()} == \
        {"api": "ANONYMOUS", "health": "ANONYMOUS", "console": "ANONYMOUS"}
    assert routes["api"]["route"] == "api/{*path}" and routes["health"]["route"] == "api/health"


def test_the_entra_app_roles_are_the_two_export_roles():
    roles = json.loads((INFRA / "entra-app-roles.json").read_text(encoding="utf-8"))
    assert sorted(role["value"] for role in roles) == ["Exports.Admin", "Exports.Contributor"]
    assert len({role["id"] for role in roles}) == 2
    assert all(role["isEnabled"] and set(role["allowedMemberTypes"]) == {"User", "Application"} for role in roles)


# ---------------------------------------------------------------------------------------------
# azd wiring


def _azd_parameter_defaults() -> dict[str, str]:
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    return {name: entry["value"] for name, entry in parameters.items()}


def test_main_parameters_json_names_only_real_parameters_and_covers_the_required_ones(main):
    given = _azd_parameter_defaults()
    assert set(given) <= set(main.parameters), f"unknown: {sorted(set(given) - set(main.parameters))}"
    required = {name for name, p in main.parameters.items() if "default" not in p}
    assert required <= set(given), f"no value for {sorted(required - set(given))}"


def test_main_parameters_json_defaults_equal_the_template_defaults(main):
    for name, value in _azd_parameter_defaults().items():
        match = re.fullmatch(r"\$\{[A-Z_]+=(.*)\}", str(value))
        if match:
            default = main.parameters[name]["default"]
            assert match.group(1) == str(default), f"{name}: main.parameters.json says {match.group(1)!r}, main.bicep {default!r}"


def test_azure_yaml_service_is_the_tagged_function_app(site):
    import yaml

    azure = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert azure["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert (ROOT / azure["infra"]["path"] / f"{azure['infra']['module']}.bicep").is_file()
    assert list(azure["services"]) == ["api"]
    assert azure["services"]["api"]["host"] == "function"
    assert (ROOT / azure["services"]["api"]["project"] / "host.json").is_file()
    # azd finds the app to deploy to by this tag.
    tags = site.body["tags"]["function"]
    assert tags["type"] == "union" and tags["parameters"]["arg_2"] == {"'azd-service-name'": "api"}
    # Each hook has a POSIX shell script and a PowerShell one for Windows.
    assert set(azure["hooks"]) == {"postdeploy", "postdown"}
    for name, hook in azure["hooks"].items():
        assert set(hook) == {"posix", "windows"}, name
        assert hook["posix"]["shell"] == "sh" and hook["windows"]["shell"] == "pwsh", name
        for platform in hook.values():
            assert platform["continueOnError"] is False and platform["interactive"] is False, name
        posix, windows = ROOT / hook["posix"]["run"], ROOT / hook["windows"]["run"]
        assert posix.is_file() and posix.stat().st_mode & 0o111, f"{posix} must exist and be executable"
        assert windows.is_file() and windows.suffix == ".ps1" and windows.stem == posix.stem, windows


def test_the_hook_reads_only_outputs_azd_provides(main):
    script = (INFRA / "hooks" / "postdeploy.sh").read_text(encoding="utf-8")
    required = re.search(r"for setting in (.*?); do", script, re.S).group(1).replace("\\", " ").split()
    windows = (INFRA / "hooks" / "postdeploy.ps1").read_text(encoding="utf-8")
    required_windows = re.findall(r"'([A-Z_]+)'", re.search(r"foreach \(\$setting in (.*?)\) \{", windows, re.S).group(1))
    assert required_windows == required, "postdeploy.ps1 checks other outputs than postdeploy.sh"
    azd_provides = {"AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME", "AZURE_LOCATION"}
    missing = set(required) - set(main.outputs) - azd_provides
    assert not missing, f"the post-deploy hook needs {sorted(missing)}, which main.bicep does not output"


def test_the_hook_subscribes_the_function_that_exists():
    script = (INFRA / "hooks" / "postdeploy.sh").read_text(encoding="utf-8")
    function = re.search(r"FUNCTION_NAME=\$\{FUNCTION_NAME:-(\w+)\}", script).group(1)
    assert function == "segment_uploaded"
    if FUNCTION_APP_PY.exists():
        assert function in function_names(), f"function_app.py defines {sorted(function_names())}"
        source = FUNCTION_APP_PY.read_text(encoding="utf-8")
        assert "BlobSource.EVENT_GRID" in source, "the webhook only reaches an EventGrid-source blob trigger"
        # An SDK-type binding: the host hands over a reference; an InputStream would download every partition.
        (handler,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == function]
        assert ast.unparse(handler.args.args[0].annotation) == "blobs.BlobClient"
        assert "import azurefunctions.extensions.bindings.blob as blobs" in source


def test_the_readme_deploy_section_documents_every_azd_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section: deploy -->", 1)[1].split("<!-- /section: deploy -->", 1)[0]
    variables = set(re.findall(r"\$\{([A-Z_]+)=", (INFRA / "main.parameters.json").read_text(encoding="utf-8")))
    undocumented = {name for name in variables if f"`{name}`" not in section}
    assert not undocumented, f"README (deploy) does not mention {sorted(undocumented)}"


# ---------------------------------------------------------------------------------------------
# What is deployed, and what it logs


def test_the_package_leaves_out_local_output_tests_and_tools():
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    # .local/ holds `make run` output (runs, rejects, the dev host's log); .azurite/ the emulator's data.
    assert {".local", ".azurite", "local.settings.json", "tests", "tools", "bench", "infra", ".venv*"} <= ignored


def test_azure_sdk_request_logging_stays_at_warning():
    """The SDKs log every request and response (headers included) at INFO: ~8 billed lines per storage call."""
    log_levels = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["logging"]["logLevel"]
    for category in ("Azure.Core", "Azure.Identity", "Azure.Storage"):
        assert log_levels[category] == "Warning", category
    if FUNCTION_APP_PY.exists():  # the worker's own (Python) Azure SDK loggers are set by the app
        tree = ast.parse(FUNCTION_APP_PY.read_text(encoding="utf-8"))
        calls = {ast.unparse(n.value.func) for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)}
        assert "quiet_sdk_logging" in calls, "function_app.py must quiet the Azure SDK loggers at import"
