"""The dev host (tools/devhost.py) running tests/devhost_app against Azurite, over real HTTP."""
from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import azure.functions as func
import pytest
import requests

from shared.settings import Settings
from shared.storage import container, queue
from tools.azurite import free_port
from tools.devhost import (
    DevHost,
    DevHostError,
    HostConfig,
    Route,
    discover_functions,
    load_local_settings,
    local_principal,
    parse_timespan,
    resolve_settings,
)

APP = "tests.devhost_app.function_app"
APP_SOURCE = Path(__file__).parent / "devhost_app"
ROOT = Path(__file__).resolve().parent.parent


def decode_principal(value: str) -> dict:
    return json.loads(base64.b64decode(value))


def wait_for(check, timeout: float = 15.0, interval: float = 0.05):
    """Poll until check() returns something truthy; fail with what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {check.__doc__ or check}")


# --- pure parts: settings, host.json, routes, principal ---------------------------------------------


def test_parse_timespan():
    assert parse_timespan("00:00:30", "x") == 30
    assert parse_timespan("01:02:03.5", "x") == 3723.5
    assert parse_timespan("1.00:00:00", "x") == 86400
    with pytest.raises(DevHostError, match=r"host.json: extensions.queues.visibilityTimeout: '30s'"):
        parse_timespan("30s", "host.json: extensions.queues.visibilityTimeout")


def test_host_config_reads_route_prefix_and_queue_options(tmp_path):
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {
        "http": {"routePrefix": "/v1/"},
        "queues": {"batchSize": 64, "maxDequeueCount": 2, "visibilityTimeout": "00:00:05"},
    }}))
    config = HostConfig.load(path)
    assert config.route_prefix == "v1"
    assert (config.queues.batch_size, config.queues.max_dequeue_count, config.queues.visibility_timeout) == (32, 2, 5)
    assert config.queues.max_polling_interval == 60  # the Functions default
    assert HostConfig.load(tmp_path / "absent.json") == HostConfig()

    path.write_text(json.dumps({"extensions": {"queues": {"maxDequeueCount": "5"}}}))
    with pytest.raises(DevHostError, match=r"extensions.queues.maxDequeueCount must be a whole number"):
        HostConfig.load(path)


def test_local_settings_fill_the_environment_but_the_environment_wins(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "from file", "B": "from file", "N": 3}}))
    environ = {"B": "from environment"}

    applied = load_local_settings(path, environ)

    assert environ == {"A": "from file", "B": "from environment", "N": "3"}
    assert applied == ["A", "N"]


@pytest.mark.parametrize(
    "document, message",
    [
        ({"IsEncrypted": True, "Values": {}}, "encrypted settings are not supported"),
        ({"Values": {"X": {"nested": 1}}}, "Values.X must be a string"),
        ({"Values": ["X"]}, "'Values' must be an object"),
    ],
)
def test_local_settings_errors_name_the_problem(tmp_path, document, message):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DevHostError, match=message):
        load_local_settings(path, {})


def test_setting_expressions_resolve_or_name_what_is_missing():
    assert resolve_settings("%Q%-x", "w", {"Q": "chunks"}) == "chunks-x"
    with pytest.raises(DevHostError, match=r"function f: binding msg.queueName refers to %Q%, but app setting Q"):
        resolve_settings("%Q%", "function f: binding msg.queueName", {})


def test_routes_match_parameters_catch_all_and_prefer_literals():
    app = func.FunctionApp()

    @app.route(route="items/{id}/{*rest}")
    def catch_all(req):
        return ""

    @app.route(route="items/special/{id:int}/{page?}")
    def literal(req):
        return ""

    routes = sorted(
        (Route(f.trigger["route"], f, None) for f in discover_functions(app, {})), key=lambda r: r.precedence
    )
    assert routes[0].function.name == "literal"
    assert routes[0].match("items/special/7") == {"id": "7"}
    assert routes[0].match("items/special/7/2") == {"id": "7", "page": "2"}
    assert routes[0].match("items/special/x") is None
    assert routes[1].match("ITEMS/a%20b/c/d.csv") == {"id": "a b", "rest": "c/d.csv"}
    assert routes[1].match("items/a") == {"id": "a"}


def test_unsupported_bindings_and_unbound_parameters_are_clear_errors():
    app = func.FunctionApp()

    @app.route(route="r")
    @app.cosmos_db_input(arg_name="docs", database_name="d", container_name="c", connection="C")
    def cosmos(req, docs):
        return ""

    with pytest.raises(DevHostError, match=r"function cosmos: in binding 'docs' of type 'cosmosDB' is not supported"):
        discover_functions(app, {})

    other = func.FunctionApp()

    @other.route(route="r")
    def extra(req, stray):
        return ""

    with pytest.raises(DevHostError, match=r"function extra: parameters \['stray'\] have no binding"):
        discover_functions(other, {})


def test_local_principal_is_built_like_easy_auth():
    headers = local_principal(["Exports.Admin", "Exports.Contributor"], "dev@example.test")
    principal = decode_principal(headers["X-MS-CLIENT-PRINCIPAL"])
    assert principal["auth_typ"] == "aad" and principal["role_typ"] == "roles"
    assert principal["name_typ"] == "preferred_username"
    claims = {(c["typ"], c["val"]) for c in principal["claims"]}
    assert {("roles", "Exports.Admin"), ("roles", "Exports.Contributor"), ("preferred_username", "dev@example.test")} <= claims
    assert headers["X-MS-CLIENT-PRINCIPAL-NAME"] == "dev@example.test"


# --- the running host -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_settings(azurite) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": azurite.connection_string,
        "DEVHOST_RECORDS": f"records-{suffix}",
        "DEVHOST_UPLOADS": f"uploads-{suffix}",
        "DEVHOST_QUEUE": f"devhost-{suffix}",
        "DEVHOST_SCHEDULE": "0 0 2 * * *",
        "DEVHOST_FROM_FILE": "from local.settings.json",
        "DEVHOST_ENV_WINS": "from local.settings.json",
    }


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory, app_settings) -> Path:
    """A folder like an app's root: the test app's host.json and a local.settings.json."""
    folder = tmp_path_factory.mktemp("devhost-app")
    shutil.copy(APP_SOURCE / "host.json", folder / "host.json")
    (folder / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": app_settings}))
    return folder


@pytest.fixture(scope="module")
def storage(app_settings):
    """(records container, uploads container, queue settings) of the test app, created."""
    settings = Settings.from_env({"AzureWebJobsStorage": app_settings["AzureWebJobsStorage"]})
    records = container(settings, app_settings["DEVHOST_RECORDS"])
    uploads = container(settings, app_settings["DEVHOST_UPLOADS"])
    records.create_container()
    uploads.create_container()
    return records, uploads, settings


@pytest.fixture(scope="module")
def host(app_dir, storage):
    """The dev host with 3 queue workers; DEVHOST_ENV_WINS is set in the environment before it starts."""
    os.environ["DEVHOST_ENV_WINS"] = "from the environment"
    devhost = DevHost(app_module=APP, port=0, workers=3, app_dir=app_dir).start()
    yield devhost
    devhost.stop()
    del os.environ["DEVHOST_ENV_WINS"]


def record(records, path: str) -> dict | None:
    blob = records.get_blob_client(path)
    return json.loads(blob.download_blob().readall()) if blob.exists() else None


def send(settings: Settings, queue_name: str, body: bytes) -> str:
    return queue(settings, queue_name).send_message(body).id


def test_http_route_with_parameters_query_body_status_and_headers(host):
    response = requests.post(
        f"{host.url}/api/items/42/a/b.csv?x=1&x=2&y=", data=b"hello body", headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 201
    assert response.headers["X-Echo"] == "yes" and response.headers["Content-Type"].startswith("application/json")
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["url"] == f"{host.url}/api/items/42/a/b.csv?x=1&x=2&y="
    assert echo["routeParams"] == {"id": "42", "rest": "a/b.csv"}
    assert echo["params"] == {"x": "1,2", "y": ""}
    assert echo["body"] == "hello body"


def test_http_literal_route_wins_unknown_routes_and_methods_are_refused(host):
    assert requests.get(f"{host.url}/api/items/special/7").text == "special 7"
    assert requests.get(f"{host.url}/api/items/other/7").json()["routeParams"] == {"id": "other", "rest": "7"}
    assert requests.get(f"{host.url}/api/nothing/here").status_code == 404
    assert requests.get(f"{host.url}/elsewhere").status_code == 404
    refused = requests.delete(f"{host.url}/api/items/1/2")
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, POST"


def test_local_settings_load_before_import_and_the_environment_wins(host):
    settings = requests.get(f"{host.url}/api/items/1/").json()["settings"]
    assert settings == {"DEVHOST_FROM_FILE": "from local.settings.json", "DEVHOST_ENV_WINS": "from the environment"}


def test_local_settings_are_removed_from_the_environment_on_stop(app_dir, storage):
    name = "DEVHOST_ONLY_IN_FILE"
    settings_file = app_dir / "local.settings.json"
    original = settings_file.read_text()
    document = json.loads(original)
    document["Values"][name] = "x"
    settings_file.write_text(json.dumps(document))
    try:
        with DevHost(app_module=APP, port=0, app_dir=app_dir):
            assert os.environ[name] == "x"
        assert name not in os.environ
    finally:
        settings_file.write_text(original)


def test_principal_is_injected_only_when_the_client_sends_none(host):
    injected = requests.get(f"{host.url}/api/items/1/").json()["principal"]
    roles = [c["val"] for c in decode_principal(injected)["claims"] if c["typ"] == "roles"]
    assert roles == ["Exports.Admin"]

    own = local_principal(["Exports.Contributor"], "someone@example.test")["X-MS-CLIENT-PRINCIPAL"]
    passed = requests.get(f"{host.url}/api/items/1/", headers={"X-MS-CLIENT-PRINCIPAL": own}).json()["principal"]
    assert passed == own  # unchanged, byte for byte


@pytest.mark.parametrize("roles, expected", [(None, None), ((), []), (("Exports.Contributor",), ["Exports.Contributor"])])
def test_principal_roles_are_configurable_or_injection_is_off(app_dir, storage, roles, expected):
    with DevHost(app_module=APP, port=0, app_dir=app_dir, principal_roles=roles) as devhost:
        principal = requests.get(f"{devhost.url}/api/items/1/").json()["principal"]
    if expected is None:
        assert principal is None
    else:
        assert [c["val"] for c in decode_principal(principal)["claims"] if c["typ"] == "roles"] == expected


def test_function_key_is_enforced_only_when_one_is_given(host):
    assert requests.get(f"{host.url}/api/items/1/x").status_code == 200  # like func start: keys not checked
    host.function_key = "the-key"
    try:
        refused = requests.get(f"{host.url}/api/items/1/x")
        assert refused.status_code == 401 and refused.content == b""  # as Azure answers, the function not run
        assert requests.get(f"{host.url}/api/items/1/x", headers={"x-functions-key": "the-key"}).status_code == 200
        assert requests.get(f"{host.url}/api/items/1/x?code=the-key").status_code == 200
        assert requests.get(f"{host.url}/api/items/1/x?code=wrong").status_code == 401
        assert requests.get(f"{host.url}/api/items/special/7").text == "special 7"  # anonymous
    finally:
        host.function_key = None


def test_an_empty_route_prefix_serves_routes_at_the_root(app_dir, storage, tmp_path):
    shutil.copytree(app_dir, tmp_path / "app")
    host_json = json.loads((tmp_path / "app" / "host.json").read_text())
    host_json["extensions"]["http"]["routePrefix"] = ""
    (tmp_path / "app" / "host.json").write_text(json.dumps(host_json))
    with DevHost(app_module=APP, port=0, app_dir=tmp_path / "app") as root_host:
        assert requests.get(f"{root_host.url}/items/special/3").text == "special 3"
        assert requests.get(f"{root_host.url}/api/items/special/3").status_code == 404
        assert requests.get(f"{root_host.url}/admin/host/status").json()["state"] == "Running"
        assert not root_host.serves_root  # no function answers GET /


def test_timer_through_the_admin_api_and_the_python_api(host, storage):
    records = storage[0]
    before = {b.name for b in records.list_blobs(name_starts_with="timer/")}

    answer = requests.post(f"{host.url}/admin/functions/tick", json={"input": ""})

    assert answer.status_code == 202
    assert host.wait_idle(10)
    host.invoke_timer("tick")
    runs = {b.name for b in records.list_blobs(name_starts_with="timer/")} - before
    assert len(runs) == 2
    assert all(record(records, name) == {"pastDue": False} for name in runs)


def test_admin_api_refuses_what_it_cannot_run(host):
    assert requests.post(f"{host.url}/admin/functions/nope", json={}).status_code == 404
    http_function = requests.post(f"{host.url}/admin/functions/echo", json={"input": "x"})
    assert http_function.status_code == 400 and "call its route" in http_function.json()["error"]
    assert requests.post(f"{host.url}/admin/functions/tick", data=b"not json").status_code == 400
    with pytest.raises(DevHostError, match="has a queueTrigger, not a timerTrigger"):
        host.invoke_timer("work")


def test_queue_message_reaches_the_function_as_a_real_queue_message(host, storage, app_settings):
    records, _, settings = storage
    message_id = send(settings, app_settings["DEVHOST_QUEUE"], b"payload \xc3\xa9")

    received = wait_for(lambda: record(records, f"queue/{message_id}.json"))

    assert received["id"] == message_id and received["body"] == "payload é"
    assert received["dequeueCount"] == 1 and received["insertionTime"]
    assert received["functionName"] == "work" and received["invocationId"]


def test_failing_message_is_retried_then_moved_to_the_poison_queue(host, storage, app_settings):
    records, _, settings = storage
    queue_name = app_settings["DEVHOST_QUEUE"]
    message_id = send(settings, queue_name, b"fail: always")
    poison = queue(settings, f"{queue_name}-poison")

    def poisoned():
        """the message in the poison queue"""
        return [m for m in poison.peek_messages(max_messages=32) if m.content == b"fail: always"]

    wait_for(poisoned)
    attempts = sorted(b.name for b in records.list_blobs(name_starts_with=f"attempts/{message_id}/"))
    assert attempts == [f"attempts/{message_id}/{n}" for n in (1, 2, 3)]  # maxDequeueCount is 3
    assert not any(m.id == message_id for m in queue(settings, queue_name).peek_messages(max_messages=32))
    assert record(records, f"queue/{message_id}.json") is None


def test_message_that_is_not_base64_goes_to_poison_without_an_invocation(host, storage, app_settings):
    from azure.storage.queue import QueueClient

    records, _, settings = storage
    queue_name = app_settings["DEVHOST_QUEUE"]
    raw = QueueClient.from_connection_string(app_settings["AzureWebJobsStorage"], queue_name)
    message_id = raw.send_message("not base64 !").id
    poison = QueueClient.from_connection_string(app_settings["AzureWebJobsStorage"], f"{queue_name}-poison")

    def poisoned():
        """the raw message in the poison queue"""
        return [m for m in poison.peek_messages(max_messages=32) if m.content == "not base64 !"]

    wait_for(poisoned)
    assert not list(records.list_blobs(name_starts_with=f"attempts/{message_id}/"))


def test_workers_run_queue_invocations_concurrently(host, storage, app_settings):
    records, _, settings = storage
    group = uuid.uuid4().hex
    ids = [send(settings, app_settings["DEVHOST_QUEUE"], f"meet:3:{group}".encode()) for _ in range(3)]

    def all_met():
        """three invocations meeting at the barrier (3 workers)"""
        return all(record(records, f"queue/{i}.json") for i in ids)

    wait_for(all_met)
    assert all(record(records, f"queue/{i}.json")["dequeueCount"] == 1 for i in ids)


def test_queue_output_binding_sends_to_the_queue(host, storage):
    records = storage[0]
    body = f"via output binding {uuid.uuid4()}"
    assert requests.post(f"{host.url}/api/enqueue", data=body).status_code == 202

    def processed():
        """the enqueued message processed by the queue function"""
        return [b for b in records.list_blobs(name_starts_with="queue/") if record(records, b.name)["body"] == body]

    wait_for(processed)


def blob_created(container_name: str, blob: str, url: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
        "subject": f"/blobServices/default/containers/{container_name}/blobs/{blob}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-01-01T00:00:00Z",
        "dataVersion": "",
        "data": {"api": "PutBlob", "blobType": "BlockBlob", "url": url, "contentLength": 5},
    }


def test_blob_created_event_invokes_the_blob_function_with_the_blob(host, storage):
    records, uploads = storage[0], storage[1]
    blob = uploads.get_blob_client("folder/a.csv")
    blob.upload_blob(b"email\nx@example.test\n", overwrite=True)
    webhook = f"{host.url}/runtime/webhooks/blobs?functionName=Host.Functions.uploaded"
    outside = blob_created("elsewhere", "b.csv", "https://example.invalid/elsewhere/b.csv")

    answer = requests.post(webhook, json=[blob_created(uploads.container_name, "folder/a.csv", blob.url), outside])

    assert answer.status_code == 202
    assert host.wait_idle(10)
    received = record(records, f"blob/{uploads.container_name}/folder/a.csv.json")
    assert received == {
        "name": f"{uploads.container_name}/folder/a.csv",
        "uri": blob.url,
        "length": 21,
        "data": "email\nx@example.test\n",
    }
    assert record(records, "blob/elsewhere/b.csv.json") is None


def test_blob_webhook_takes_a_single_event_and_answers_the_validation_handshake(host, storage):
    records, uploads = storage[0], storage[1]
    blob = uploads.get_blob_client("single.csv")
    blob.upload_blob(b"one", overwrite=True)
    webhook = f"{host.url}/runtime/webhooks/blobs?functionName=Host.Functions.uploaded"

    assert requests.post(webhook, json=blob_created(uploads.container_name, "single.csv", blob.url)).status_code == 202
    assert host.wait_idle(10)
    assert record(records, f"blob/{uploads.container_name}/single.csv.json")["data"] == "one"

    validation = [{
        "id": "v", "subject": "", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}, "dataVersion": "1", "eventTime": "x",
    }]
    answer = requests.post(webhook, json=validation, headers={"aeg-event-type": "SubscriptionValidation"})
    assert answer.status_code == 200
    assert answer.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    wrong = requests.post(f"{host.url}/runtime/webhooks/blobs?functionName=Host.Functions.work", json=[])
    assert wrong.status_code == 404


LARGE_PARTITION = 16 * 1024 * 1024  # Customer Insights writes partitions of hundreds of MB


@pytest.fixture(scope="module")
def large_upload(storage) -> str:
    """A 16 MiB CSV in the uploads container (written straight to Azurite); its blob path."""
    uploads = storage[1]
    line = b"someone@example.test,Some,Body,+1 555 0100\n"
    uploads.get_blob_client("large/part_0.csv").upload_blob(line * (LARGE_PARTITION // len(line) + 1), overwrite=True)
    return "large/part_0.csv"


def test_an_sdk_type_trigger_gets_a_client_and_the_blob_is_never_downloaded(
        host, storage, app_dir, large_upload, blob_traffic, monkeypatch):
    records, uploads = storage[0], storage[1]
    # Everything the hosted app and the dev host do with blobs now goes through the counting forwarder.
    monkeypatch.setenv("AzureWebJobsStorage", blob_traffic.connection_string)
    with DevHost(app_module=APP, port=0, app_dir=app_dir) as counted:
        webhook = f"{counted.url}/runtime/webhooks/blobs?functionName=Host.Functions.uploaded_client"
        blob_traffic.reset()

        answer = requests.post(webhook, json=[blob_created(uploads.container_name, large_upload, "x")])

        assert answer.status_code == 202
        assert counted.wait_idle(30)
        client_read = blob_traffic.downloaded
        received = record(records, f"blob-client/{uploads.container_name}/{large_upload}.json")
        assert received["type"] == "azure.storage.blob._blob_client.BlobClient"
        assert (received["container"], received["blob"]) == (uploads.container_name, large_upload)
        assert received["url"].endswith(f"/devstoreaccount1/{uploads.container_name}/{large_upload}")
        assert received["size"] >= LARGE_PARTITION
        # A properties read and the record: a few kB, not the 16 MiB partition.
        assert client_read < 64 * 1024, f"{client_read} bytes came from the blob service"

        # The same partition through an InputStream trigger: the forwarder does see a download.
        blob_traffic.reset()
        stream_webhook = f"{counted.url}/runtime/webhooks/blobs?functionName=Host.Functions.uploaded"
        assert requests.post(stream_webhook, json=[blob_created(uploads.container_name, large_upload, "x")]).status_code == 202
        assert counted.wait_idle(60)
        assert blob_traffic.downloaded >= LARGE_PARTITION


def test_an_sdk_type_trigger_on_a_missing_blob_is_not_run(host, storage, caplog):
    uploads = storage[1]
    caplog.set_level(logging.ERROR, logger="devhost")
    webhook = f"{host.url}/runtime/webhooks/blobs?functionName=Host.Functions.uploaded_client"

    assert requests.post(webhook, json=[blob_created(uploads.container_name, "gone.csv", "x")]).status_code == 202
    assert host.wait_idle(10)
    assert f"Function uploaded_client not run for blob {uploads.container_name}/gone.csv" in caplog.text
    assert "does not exist" in caplog.text


def test_the_admin_api_runs_an_sdk_type_trigger_with_a_client(host, storage):
    records, uploads = storage[0], storage[1]
    uploads.get_blob_client("admin/one.csv").upload_blob(b"email\n", overwrite=True)

    host.invoke("uploaded_client", f"{uploads.container_name}/admin/one.csv")

    received = record(records, f"blob-client/{uploads.container_name}/admin/one.csv.json")
    assert (received["container"], received["blob"], received["size"]) == (uploads.container_name, "admin/one.csv", 6)


def test_invocations_are_logged_without_bodies_or_headers(host, caplog):
    caplog.set_level(logging.DEBUG, logger="devhost")
    marker = f"private-{uuid.uuid4()}"

    requests.post(f"{host.url}/api/items/1/2", data=marker, headers={"X-Api-Key": marker})

    assert "Executed 'Functions.echo' (Succeeded" in caplog.text and "Duration=" in caplog.text
    assert marker not in caplog.text


def test_failing_http_function_answers_500_and_logs_the_failure(host, caplog):
    caplog.set_level(logging.ERROR, logger="devhost")
    answer = requests.post(f"{host.url}/api/enqueue", data=b"\xff\xfe")  # not UTF-8: the function raises
    assert answer.status_code == 500 and answer.content == b""
    assert "Executed 'Functions.enqueue' (Failed" in caplog.text and "UnicodeDecodeError" in caplog.text


def test_command_line_serves_the_app(app_dir, storage):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.devhost", "--port", str(port), "--app", APP, "--app-dir", str(app_dir),
         "--principal-roles", "Exports.Contributor"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def answered():
            """the dev host command answering on its port"""
            try:
                return requests.get(f"http://127.0.0.1:{port}/api/items/special/3", timeout=1)
            except requests.ConnectionError:
                return None

        assert wait_for(answered, timeout=30).text == "special 3"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert f"special: [GET] http://127.0.0.1:{port}/api/items/special/{{id}}" in output
    assert "work: queueTrigger devhost-" in output and "tick: timerTrigger 0 0 2 * * * (not on schedule here" in output
