"""infra/hooks/postdeploy.sh, run for real with a stand-in `az` first on PATH.

Azure is out of reach here, so the stand-in answers the three az calls the hook makes and records
what it was asked; the tests check the Event Grid subscription the hook would create, that the
key never shows on a command line or in output, and that missing outputs fail clearly.
"""
from __future__ import annotations

import json
import os
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
# Shaped like a real function key, with the characters that need percent-encoding in a URL.
BLOBS_KEY = "Xk3+q/9Zt0LmNpQrStUvWx==AbCd-ef_gh"
HOST = "func-abc123.azurewebsites.net"

FAKE_AZ = textwrap.dedent(
    '''
    """Stand-in for the Azure CLI: answers the hook's calls, records argv and request bodies."""
    import json, os, sys
    from pathlib import Path

    record = Path(os.environ["FAKE_AZ_RECORD"])
    args = sys.argv[1:]
    calls = json.loads(record.read_text()) if record.exists() else []
    entry = {"argv": args}
    if args[:1] == ["rest"]:
        body = args[args.index("--body") + 1]
        assert body.startswith("@"), "the body must come from a file"
        path = Path(body[1:])
        entry["body"] = json.loads(path.read_text())
        entry["body_file"] = str(path)
        entry["body_mode"] = oct(path.stat().st_mode & 0o777)
    calls.append(entry)
    record.write_text(json.dumps(calls))
    if args[:3] == ["functionapp", "keys", "list"]:
        polls = sum(1 for c in calls if c["argv"][:3] == ["functionapp", "keys", "list"])
        if polls > int(os.environ.get("FAKE_AZ_KEY_AFTER_POLLS", "0")):
            print(os.environ["FAKE_AZ_KEY"])
    elif args[:2] == ["functionapp", "show"]:
        print(os.environ["FAKE_AZ_HOST"])
    '''
)

OUTPUTS = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_RESOURCE_GROUP": "rg-omnisend",
    "AZURE_FUNCTION_APP_NAME": "func-abc123",
    "EVENTGRID_SYSTEM_TOPIC_NAME": "evgt-abc123",
    "SEGMENTS_CONTAINER": "segments",
}


@dataclass
class HookRun:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict]

    def rest_calls(self) -> list[dict]:
        return [c for c in self.calls if c["argv"][:1] == ["rest"]]


@pytest.fixture()
def run_hook(tmp_path):
    if shutil.which("sh") is None:
        pytest.skip("no POSIX sh on this machine")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\n{FAKE_AZ}", encoding="utf-8")
    az.chmod(0o755)
    record = tmp_path / "az-calls.json"

    def run(outputs: dict[str, str] = OUTPUTS, **extra_env: str) -> HookRun:
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
            "FAKE_AZ_RECORD": str(record),
            "FAKE_AZ_KEY": BLOBS_KEY,
            "FAKE_AZ_HOST": HOST,
            "KEY_POLL_SECONDS": "0",
            **outputs,
            **extra_env,
        }
        done = subprocess.run(["sh", str(HOOK)], capture_output=True, text=True, env=env, timeout=60)
        calls = json.loads(record.read_text()) if record.exists() else []
        return HookRun(done.returncode, done.stdout, done.stderr, calls)

    return run


def test_the_hook_subscribes_segment_uploaded_to_blob_created_in_the_segments_container(run_hook):
    result = run_hook()
    assert result.returncode == 0, result.stderr
    (rest,) = result.rest_calls()
    argv = rest["argv"]
    assert argv[argv.index("--method") + 1] == "put"
    assert argv[argv.index("--url") + 1] == (
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-omnisend/providers/"
        "Microsoft.EventGrid/systemTopics/evgt-abc123/eventSubscriptions/segment-uploaded?api-version=2022-06-15"
    )
    properties = rest["body"]["properties"]
    assert properties["destination"]["endpointType"] == "WebHook"
    url = urllib.parse.urlsplit(properties["destination"]["properties"]["endpointUrl"])
    assert (url.scheme, url.netloc, url.path) == ("https", HOST, "/runtime/webhooks/blobs")
    query = urllib.parse.parse_qs(url.query, strict_parsing=True)
    assert query == {"functionName": ["Host.Functions.segment_uploaded"], "code": [BLOBS_KEY]}
    assert properties["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert properties["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/segments/"
    assert "segment-uploaded" in result.stdout


def test_the_key_is_read_from_the_apps_system_keys(run_hook):
    result = run_hook()
    (keys,) = [c["argv"] for c in result.calls if c["argv"][:3] == ["functionapp", "keys", "list"]]
    assert keys[keys.index("--query") + 1] == "systemKeys.blobs_extension"
    assert keys[keys.index("--name") + 1] == "func-abc123"
    assert keys[keys.index("--resource-group") + 1] == "rg-omnisend"


def test_the_key_never_appears_in_output_or_on_a_command_line(run_hook):
    result = run_hook()
    assert result.returncode == 0, result.stderr
    encoded = urllib.parse.quote(BLOBS_KEY, safe="")
    for text in (result.stdout, result.stderr, *(" ".join(c["argv"]) for c in result.calls)):
        assert BLOBS_KEY not in text and encoded not in text


def test_the_request_body_is_private_and_removed(run_hook):
    result = run_hook()
    (rest,) = result.rest_calls()
    assert rest["body_mode"] == "0o600"
    assert not Path(rest["body_file"]).exists(), "the file holding the key outlived the hook"


def test_the_hook_waits_for_the_key_to_appear(run_hook):
    result = run_hook(FAKE_AZ_KEY_AFTER_POLLS="2", KEY_WAIT_SECONDS="5")
    assert result.returncode == 0, result.stderr
    assert sum(1 for c in result.calls if c["argv"][:3] == ["functionapp", "keys", "list"]) == 3


def test_no_key_in_time_fails_naming_the_app_and_creates_nothing(run_hook):
    result = run_hook(FAKE_AZ_KEY_AFTER_POLLS="1000", KEY_WAIT_SECONDS="0")
    assert result.returncode == 1
    assert "func-abc123 has no blobs_extension key" in result.stderr
    assert "azd hooks run postdeploy" in result.stderr
    assert not result.rest_calls()


@pytest.mark.parametrize("missing", sorted(OUTPUTS))
def test_a_missing_output_fails_naming_it(run_hook, missing):
    outputs = {name: value for name, value in OUTPUTS.items() if name != missing}
    result = run_hook(outputs)
    assert result.returncode == 2
    assert f"{missing} is not set" in result.stderr
    assert not result.calls, "nothing may be called before the inputs are known"
