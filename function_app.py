"""Azure Functions app (Python v2 programming model): thin glue over `shared/`.

Each trigger parses its input, calls one function in `shared/`, and shapes the output.
"""
import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blobs

from shared import api, console, runs
from shared.settings import get_settings
from shared.telemetry import quiet_sdk_logging
from shared.tuning import tune_garbage_collector

app = func.FunctionApp()
tune_garbage_collector()
quiet_sdk_logging()  # the Azure SDK logs every request's headers at INFO, each line billed in Application Insights
log = logging.getLogger(__name__)


# host.json sets routePrefix to "" so that the console can live at the root: every API route names
# its "api/" itself. Precedence (as in the Functions host and the dev host): literal segments win over
# parameters, so api/health wins over api/{*path}, and api/... over the console's {file?}.
#
# Anonymous at the Functions-key level, because every API route's authorisation is the app's own
# (shared/api/routing.py): the caller is the App Service Authentication principal and its app roles
# (shared/auth.py), and with App Service Authentication off the app refuses every caller but the
# public health and OpenAPI routes (Settings.trust_client_principal). A function key added nothing a
# caller could not already be refused for, and it made the web console, a browser page, handle a key.
@app.function_name("api")
@app.route(
    route="api/{*path}",
    methods=["GET", "POST", "PUT", "DELETE"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
def http_api(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(req, req.route_params.get("path") or "")


# Health probes carry no function key: this one route is anonymous (the literal route wins over api/{*path}).
@app.function_name("health")
@app.route(route="api/health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(req, "health")


# The web console's files (console/), at / and /<file>. A browser has no function key, so this route is
# anonymous at the key level; in Azure App Service Authentication still stands in front of it, and the
# files hold no data: everything shown comes from the role-checked API above. One path segment
# only ({file?}), so it never shadows the host's own /admin/... and /runtime/webhooks/... routes.
@app.function_name("console")
@app.route(route="{file?}", methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
def console_files(req: func.HttpRequest) -> func.HttpResponse:
    answer = console.serve(req.route_params.get("file") or "", req.method, req.headers.get("If-None-Match"))
    return func.HttpResponse(body=answer.body, status_code=answer.status, headers=answer.headers)


def _answer(req: func.HttpRequest, path: str) -> func.HttpResponse:
    request = api.ApiRequest(
        method=req.method,
        path=path,
        headers=dict(req.headers),
        query=dict(req.params),
        body=req.get_body() or b"",
    )
    response = api.handle(get_settings(), request)
    return func.HttpResponse(body=response.body, status_code=response.status, headers=response.headers)


@app.function_name("scheduled_exports")
@app.timer_trigger(schedule="%EXPORT_SCHEDULE%", arg_name="timer", run_on_startup=False)
def scheduled_exports(timer: func.TimerRequest) -> None:
    started = runs.start_scheduled_runs(get_settings())
    log.info("scheduled refresh: %d export run(s) recorded", len(started))


# Bound as a BlobClient (an SDK type, as Microsoft's Python Event Grid blob sample does): the host hands
# over a reference to the new blob, never its content. Customer Insights writes partitions of hundreds
# of MB; an InputStream would download each one into the worker only for its name.
@app.function_name("segment_uploaded")
@app.blob_trigger(
    arg_name="blob",
    path="%SEGMENTS_CONTAINER%/{name}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def segment_uploaded(blob: blobs.BlobClient) -> None:
    path = blob.blob_name  # the path inside the segments container
    started = runs.start_runs_for_upload(get_settings(), path)
    log.info("upload of %s: %d export run(s) recorded", path, len(started))


@app.function_name("process_chunk")
@app.queue_trigger(arg_name="message", queue_name="%EXPORT_QUEUE%", connection="AzureWebJobsStorage")
def process_chunk(message: func.QueueMessage) -> None:
    runs.process_message(get_settings(), message.get_body(), delivery=message.id)


@app.function_name("chunk_poison")
@app.queue_trigger(arg_name="message", queue_name="%EXPORT_QUEUE%-poison", connection="AzureWebJobsStorage")
def chunk_poison(message: func.QueueMessage) -> None:
    runs.fail_poisoned_message(get_settings(), message.get_body(), delivery=message.id)


# Every 5 minutes: re-drive runs without progress for RUN_STALL_MINUTES, fail those past RUN_MAX_HOURS.
@app.function_name("run_watchdog")
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
def run_watchdog(timer: func.TimerRequest) -> None:
    runs.watch_runs(get_settings())
