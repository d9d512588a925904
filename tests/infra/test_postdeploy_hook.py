"""infra/hooks/postdeploy.sh (and postdown.sh), run for real with a stand-in `az` (and `azd`) first on PATH.

Azure is out of reach here, so the stand-in answers the az calls the hook makes the way the real CLI
does (exit codes, `ERROR:` lines on stderr, `@file` arguments read from the file) and records what it
was asked. The tests check the sign-in check, the Event Grid subscription the hook creates, that a
failed webhook validation fails the hook with Event Grid's reason, that the key never shows on a
command line or in output, and that missing outputs fail clearly. postdeploy.ps1 (Windows) cannot
run here: its steps are compared with the shell script's.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.conftest import INFRA

HOOK = INFRA / "hooks" / "postdeploy.sh"
HOOK_PS1 = INFRA / "hooks" / "postdeploy.ps1"
POSTDOWN = INFRA / "hooks" / "postdown.sh"
POSTDOWN_PS1 = INFRA / "hooks" / "postdown.ps1"
# Shaped like a real function key, with the characters that need percent-encoding in a URL.
BLOBS_KEY = "Xk3+q/9Zt0LmNpQrStUvWx==AbCd-ef_gh"
HOST = "func-abc123.azurewebsites.net"

FAKE_AZ = textwrap.dedent(
    '''
    """Stand-in for the Azure CLI (and azd): answers the hooks' calls like they do, records argv and @file values."""
    import json, os, sys
    from pathlib import Path

    record = Path(os.environ["FAKE_AZ_RECORD"])
    args = sys.argv[1:]
    calls = json.loads(record.read_text()) if record.exists() else []
    entry = {"argv": args}
    # az reads any argument value written "@<file>" from that file.
    for index, value in enumerate(args):
        if value.startswith("@"):
            path = Path(value[1:])
            entry.setdefault("files", {})[args[index - 1]] = {
                "path": str(path), "text": path.read_text(), "mode": oct(path.stat().st_mode & 0o777),
                "dir_mode": oct(path.parent.stat().st_mode & 0o777)}
    calls.append(entry)
    record.write_text(json.dumps(calls))

    def error(message):
        print("ERROR: " + message, file=sys.stderr)
        sys.exit(1)

    def option(name):
        return args[args.index(name) + 1]

    if args[:2] == ["account", "show"]:
        if os.environ.get("FAKE_AZ_SIGNED_IN", "1") != "1":
            error("Please run 'az login' to setup account.")
        print(option("--subscription"))
    elif args[:3] == ["functionapp", "keys", "list"]:
        if os.environ.get("FAKE_AZ_KEYS_ERROR"):
            error(os.environ["FAKE_AZ_KEYS_ERROR"])
        polls = sum(1 for c in calls if c["argv"][:3] == ["functionapp", "keys", "list"])
        if polls > int(os.environ.get("FAKE_AZ_KEY_AFTER_POLLS", "0")):
            print(os.environ["FAKE_AZ_KEY"])
        else:
            print("")
    elif args[:2] == ["functionapp", "show"]:
        print(os.environ["FAKE_AZ_HOST"])
    elif args[:4] == ["eventgrid", "system-topic", "event-subscription", "create"]:
        if os.environ.get("FAKE_AZ_VALIDATION") == "fail":
            # What az prints when Event Grid's asynchronous webhook validation fails (it names the endpoint).
            endpoint = entry["files"]["--endpoint"]["text"]
            error("(Url validation) Webhook validation handshake failed for " + endpoint + ". Http POST request "
                  "failed with response code Unauthorized. For troublehooting, visit https://aka.ms/esvalidation. "
                  "Activity id:3f2c, timestamp: 11/30/2026 2:00:00 AM (UTC).")
    elif args[:4] == ["eventgrid", "system-topic", "event-subscription", "show"]:
        print(os.environ.get("FAKE_AZ_STATE", "Succeeded"))
    elif args[:2] == ["env", "set"]:  # azd (the same stand-in answers as azd)
        pass
    else:
        error("the stand-in does not know: az " + " ".join(args))
    '''
)

OUTPUTS = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_RESOURCE_GROUP": "rg-omnisend",
    "AZURE_FUNCTION_APP_NAME": "func-abc123",
    "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-abc123",
    "SEGMENTS_CONTAINER": "segments",
}
CREATE = ["eventgrid", "system-topic", "event-subscription", "create"]


@dataclass
class HookRun:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict]

    def called(self, *prefix: str) -> list[dict]:
        return [c for c in self.calls if c["argv"][: len(prefix)] == list(prefix)]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture()
def stand_in_bin(tmp_path) -> Path:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX sh on this machine")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("az", "azd"):
        tool = bin_dir / name
        tool.write_text(f"#!{sys.executable}\n{FAKE_AZ}", encoding="utf-8")
        tool.chmod(0o755)
    return bin_dir


@pytest.fixture()
def run_hook(tmp_path, stand_in_bin):
    record = tmp_path / "az-calls.json"

    def run(outputs: dict[str, str] = OUTPUTS, script: Path = HOOK, **extra_env: str) -> HookRun:
        env = {
            "PATH": f"{stand_in_bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
            "FAKE_AZ_RECORD": str(record),
            "FAKE_AZ_KEY": BLOBS_KEY,
            "FAKE_AZ_HOST": HOST,
            "KEY_POLL_SECONDS": "0",
            **outputs,
            **extra_env,
        }
        done = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env, timeout=60)
        calls = json.loads(record.read_text()) if record.exists() else []
        return HookRun(done.returncode, done.stdout, done.stderr, calls)

    return run


def assert_no_key(result: HookRun) -> None:
    encoded = urllib.parse.quote(BLOBS_KEY, safe="")
    for text in (result.stdout, result.stderr, *(" ".join(c["argv"]) for c in result.calls)):
        assert BLOBS_KEY not in text and encoded not in text, text


# --- a deployment that works -----------------------------------------------------------------------


def test_the_hook_checks_the_sign_in_first(run_hook):
    result = run_hook()
    assert result.returncode == 0, result.stderr
    assert result.calls[0]["argv"][:2] == ["account", "show"]
    assert option(result.calls[0]["argv"], "--subscription") == OUTPUTS["AZURE_SUBSCRIPTION_ID"]


def test_the_hook_subscribes_segment_uploaded_to_blob_created_in_the_segments_container(run_hook):
    result = run_hook()
    assert result.returncode == 0, result.stderr
    (create,) = result.called(*CREATE)
    argv = create["argv"]
    assert option(argv, "--subscription") == "00000000-0000-0000-0000-000000000001"
    assert option(argv, "--resource-group") == "rg-omnisend"
    assert option(argv, "--system-topic-name") == "evgt-abc123"
    assert option(argv, "--name") == "segment-uploaded"
    assert option(argv, "--endpoint-type") == "webhook"
    assert option(argv, "--included-event-types") == "Microsoft.Storage.BlobCreated"
    assert option(argv, "--subject-begins-with") == "/blobServices/default/containers/segments/"
    assert option(argv, "--event-delivery-schema") == "eventgridschema"
    assert (option(argv, "--max-delivery-attempts"), option(argv, "--event-ttl")) == ("30", "1440")
    assert "--no-wait" not in argv, "az must wait for Event Grid's webhook validation"
    url = urllib.parse.urlsplit(create["files"]["--endpoint"]["text"])
    assert (url.scheme, url.netloc, url.path) == ("https", HOST, "/runtime/webhooks/blobs")
    query = urllib.parse.parse_qs(url.query, strict_parsing=True)
    assert query == {"functionName": ["Host.Functions.segment_uploaded"], "code": [BLOBS_KEY]}
    assert "segment-uploaded" in result.stdout and "webhook validated" in result.stdout


def test_the_hook_confirms_the_subscription_succeeded(run_hook):
    result = run_hook()
    (show,) = result.called("eventgrid", "system-topic", "event-subscription", "show")
    assert option(show["argv"], "--query") == "provisioningState"
    assert option(show["argv"], "--name") == "segment-uploaded"
    assert result.calls.index(show) > result.calls.index(result.called(*CREATE)[0])


def test_the_key_is_read_from_the_apps_system_keys(run_hook):
    result = run_hook()
    (keys,) = [c["argv"] for c in result.called("functionapp", "keys", "list")]
    assert option(keys, "--query") == "systemKeys.blobs_extension"
    assert option(keys, "--name") == "func-abc123"
    assert option(keys, "--resource-group") == "rg-omnisend"


def test_the_key_never_appears_in_output_or_on_a_command_line(run_hook):
    result = run_hook()
    assert result.returncode == 0, result.stderr
    assert_no_key(result)


def test_the_endpoint_file_is_private_and_removed(run_hook):
    result = run_hook()
    (create,) = result.called(*CREATE)
    endpoint = create["files"]["--endpoint"]
    assert endpoint["mode"] == "0o600" and endpoint["dir_mode"] == "0o700"
    assert not Path(endpoint["path"]).exists(), "the file holding the key outlived the hook"


def test_the_hook_waits_for_the_key_to_appear(run_hook):
    result = run_hook(FAKE_AZ_KEY_AFTER_POLLS="2", KEY_WAIT_SECONDS="5")
    assert result.returncode == 0, result.stderr
    assert len(result.called("functionapp", "keys", "list")) == 3


# --- what goes wrong, and what the hook says -------------------------------------------------------


def test_without_az_login_the_hook_says_to_sign_in_and_does_nothing_else(run_hook):
    result = run_hook(FAKE_AZ_SIGNED_IN="0")
    assert result.returncode == 1
    assert "not signed in to subscription 00000000-0000-0000-0000-000000000001" in result.stderr
    assert "az login" in result.stderr and "azd hooks run postdeploy" in result.stderr
    assert "Please run 'az login' to setup account." in result.stderr, "az's own message is shown"
    assert [c["argv"][:2] for c in result.calls] == [["account", "show"]], "no polling without a sign-in"


def test_a_failed_webhook_validation_fails_the_hook_with_event_grids_reason(run_hook):
    result = run_hook(FAKE_AZ_VALIDATION="fail")
    assert result.returncode == 1
    assert "Event Grid did not accept the subscription 'segment-uploaded'" in result.stderr
    assert "Webhook validation handshake failed" in result.stderr
    assert "response code Unauthorized" in result.stderr
    assert "azd hooks run postdeploy" in result.stderr
    assert "webhook validated" not in result.stdout, "no success message after a failure"
    # Event Grid's message names the endpoint, key included: the hook masks it.
    assert "code=***" in result.stderr
    assert_no_key(result)


def test_a_subscription_that_did_not_succeed_fails_the_hook(run_hook):
    result = run_hook(FAKE_AZ_STATE="Failed")
    assert result.returncode == 1
    assert "the subscription 'segment-uploaded' is 'Failed', not Succeeded" in result.stderr


def test_an_az_error_while_reading_keys_stops_at_once_with_its_message(run_hook):
    result = run_hook(FAKE_AZ_KEYS_ERROR="(AuthorizationFailed) The client does not have authorization",
                      KEY_WAIT_SECONDS="300", KEY_POLL_SECONDS="60")
    assert result.returncode == 1
    assert "AuthorizationFailed" in result.stderr and "could not read the system keys of func-abc123" in result.stderr
    assert len(result.called("functionapp", "keys", "list")) == 1, "an error is not a key still being created"
    assert not result.called(*CREATE)


def test_no_key_in_time_fails_naming_the_app_and_creates_nothing(run_hook):
    result = run_hook(FAKE_AZ_KEY_AFTER_POLLS="1000", KEY_WAIT_SECONDS="0")
    assert result.returncode == 1
    assert "func-abc123 has no blobs_extension key" in result.stderr
    assert "azd hooks run postdeploy" in result.stderr
    assert not result.called(*CREATE)


@pytest.mark.parametrize("missing", sorted(OUTPUTS))
def test_a_missing_output_fails_naming_it(run_hook, missing):
    outputs = {name: value for name, value in OUTPUTS.items() if name != missing}
    result = run_hook(outputs)
    assert result.returncode == 2
    assert f"{missing} is not set" in result.stderr
    assert not result.calls, "nothing may be called before the inputs are known"


# --- postdown: a new Key Vault name after azd down -------------------------------------------------


def test_postdown_sets_a_new_key_vault_seed_in_the_azd_environment(run_hook):
    result = run_hook(outputs={"AZURE_ENV_NAME": "omnisend-prod"}, script=POSTDOWN)
    assert result.returncode == 0, result.stderr
    (call,) = result.calls
    argv = call["argv"]
    assert argv[:3] == ["env", "set", "KEY_VAULT_SEED"] and re.fullmatch(r"\d{14}", argv[3])
    assert option(argv, "--environment") == "omnisend-prod"
    assert "KEY_VAULT_SEED" in result.stdout


# --- the Windows variants do the same ----------------------------------------------------------------


def test_the_powershell_hook_takes_the_same_steps():
    sh, ps1 = HOOK.read_text(encoding="utf-8"), HOOK_PS1.read_text(encoding="utf-8")
    for text in (
        "az account show --subscription", "az login", "azd hooks run postdeploy", "systemKeys.blobs_extension",
        "--endpoint-type webhook", '--endpoint "@$endpoint"', "--included-event-types Microsoft.Storage.BlobCreated",
        "--event-delivery-schema eventgridschema --max-delivery-attempts 30 --event-ttl 1440", "provisioningState",
        "Succeeded", "/runtime/webhooks/blobs?functionName=Host.Functions.", "segment-uploaded", "segment_uploaded",
        "not signed in to subscription", "Event Grid did not accept the subscription", "has no blobs_extension key",
    ):
        assert text in ps1, f"postdeploy.ps1 lacks {text!r}"
        assert text in sh, f"postdeploy.sh lacks {text!r}"
    assert "Replace($secret, '***')" in ps1 and "EscapeDataString" in ps1  # masks the key, plain and encoded
    assert "subscription create" in sh and "event-subscription create @subscription" in ps1
    assert "subscription show" in sh and "event-subscription show @subscription" in ps1
    for setting in OUTPUTS:
        assert f"'{setting}'" in ps1
    assert ps1.count("exit 2") == 1 and ps1.count("exit 1") >= 2  # the same exit codes as the shell script
    assert "--no-wait" not in ps1 and "--no-wait" not in sh


def test_the_powershell_postdown_sets_the_same_seed():
    ps1 = POSTDOWN_PS1.read_text(encoding="utf-8")
    assert "azd env set KEY_VAULT_SEED $seed --environment $env:AZURE_ENV_NAME" in ps1
    assert "yyyyMMddHHmmss" in ps1
