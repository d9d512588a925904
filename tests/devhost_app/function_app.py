"""A tiny v2-model app, one function per trigger kind, used only to test the dev host.

Each function writes what it received into the `DEVHOST_RECORDS` container (or returns it), so a
test can see exactly what the host handed over.
"""
from __future__ import annotations

import json
import os
import threading
import uuid

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blobs
from azure.storage.blob import BlobServiceClient

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# Barriers for the concurrency check: "meet:<n>:<group>" messages pass only when n invocations run at once.
_barriers: dict[str, threading.Barrier] = {}
_barriers_lock = threading.Lock()


def _record(path: str, document: dict) -> None:
    service = BlobServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])
    blob = service.get_blob_client(os.environ["DEVHOST_RECORDS"], path)
    blob.upload_blob(json.dumps(document, default=str), overwrite=True)


@app.route(route="items/{id}/{*rest}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    document = {
        "method": req.method,
        "url": req.url,
        "routeParams": dict(req.route_params),
        "params": dict(req.params),
        "principal": req.headers.get("x-ms-client-principal"),
        "body": req.get_body().decode(),
        "settings": {name: os.environ.get(name) for name in ("DEVHOST_FROM_FILE", "DEVHOST_ENV_WINS")},
    }
    return func.HttpResponse(
        json.dumps(document), status_code=201 if req.method == "POST" else 200,
        mimetype="application/json", headers={"X-Echo": "yes"},
    )


@app.route(route="items/special/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def special(req: func.HttpRequest) -> str:
    return f"special {req.route_params['id']}"


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="%DEVHOST_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode())
    return func.HttpResponse(status_code=202)


@app.timer_trigger(arg_name="timer", schedule="%DEVHOST_SCHEDULE%")
def tick(timer: func.TimerRequest) -> None:
    _record(f"timer/{uuid.uuid4()}.json", {"pastDue": timer.past_due})


@app.queue_trigger(arg_name="msg", queue_name="%DEVHOST_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage, context: func.Context) -> None:
    body = msg.get_body().decode()
    _record(f"attempts/{msg.id}/{msg.dequeue_count}", {"body": body})
    if body.startswith("fail"):
        raise RuntimeError("this message always fails")
    if body.startswith("meet:"):
        _, parties, group = body.split(":")
        with _barriers_lock:
            barrier = _barriers.setdefault(group, threading.Barrier(int(parties), timeout=10))
        barrier.wait()
    _record(f"queue/{msg.id}.json", {
        "id": msg.id, "body": body, "dequeueCount": msg.dequeue_count, "insertionTime": msg.insertion_time,
        "functionName": context.function_name, "invocationId": context.invocation_id,
    })


@app.blob_trigger(arg_name="blob", path="%DEVHOST_UPLOADS%/{name}", connection="AzureWebJobsStorage",
                  source=func.BlobSource.EVENT_GRID)
def uploaded(blob: func.InputStream) -> None:
    data = blob.read()
    _record(f"blob/{blob.name}.json", {"name": blob.name, "uri": blob.uri, "length": blob.length, "data": data.decode()})


@app.blob_trigger(arg_name="client", path="%DEVHOST_UPLOADS%/{name}", connection="AzureWebJobsStorage",
                  source=func.BlobSource.EVENT_GRID)
def uploaded_client(client: blobs.BlobClient) -> None:
    # An SDK-type binding: a client for the blob, nothing read yet. Only its properties are fetched here.
    properties = client.get_blob_properties()
    _record(f"blob-client/{client.container_name}/{client.blob_name}.json", {
        "type": type(client).__module__ + "." + type(client).__name__, "container": client.container_name,
        "blob": client.blob_name, "url": client.url, "size": properties.size})
