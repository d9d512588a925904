#!/bin/sh
# azd postdeploy hook: subscribe the segment_uploaded function to the BlobCreated events of the
# segments container. It runs after the code is deployed because the webhook URL needs the app's
# blobs_extension system key, which the host creates once it has indexed the blob trigger.
# The key is never printed or passed on a command line: it goes into a private temp file that
# `az rest` reads as the request body, and the file is deleted on exit.
#
# Outside azd, export the deployment outputs named below and run this script (README: Deploy).
set -eu

fail() {
  echo "postdeploy: $*" >&2
  exit 2
}

for setting in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME \
  EVENTGRID_SYSTEM_TOPIC_NAME SEGMENTS_CONTAINER; do
  eval "value=\${$setting:-}"
  [ -n "$value" ] || fail "$setting is not set (run through azd, or export the deployment outputs)"
done

FUNCTION_NAME=${FUNCTION_NAME:-segment_uploaded}
EVENT_SUBSCRIPTION_NAME=${EVENT_SUBSCRIPTION_NAME:-segment-uploaded}
# The host may need a minute after deployment to index the functions and create the key.
KEY_WAIT_SECONDS=${KEY_WAIT_SECONDS:-300}
KEY_POLL_SECONDS=${KEY_POLL_SECONDS:-10}

app() {
  az functionapp "$@" --subscription "$AZURE_SUBSCRIPTION_ID" \
    --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME"
}

blobs_extension_key() {
  app keys list --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true
}

# Percent-encodes everything but RFC 3986 unreserved characters (keys may hold '+', '/', '=').
url_encode() {
  rest=$1
  encoded=
  while [ -n "$rest" ]; do
    tail=${rest#?}
    char=${rest%"$tail"}
    case $char in
      [A-Za-z0-9._~-]) encoded="$encoded$char" ;;
      *) encoded="$encoded$(printf '%%%02X' "'$char")" ;;
    esac
    rest=$tail
  done
  printf '%s' "$encoded"
}

waited=0
key=$(blobs_extension_key)
while [ -z "$key" ]; do
  if [ "$waited" -ge "$KEY_WAIT_SECONDS" ]; then
    echo "postdeploy: $AZURE_FUNCTION_APP_NAME has no blobs_extension key after ${waited}s;" \
      "is $FUNCTION_NAME deployed? Retry with: azd hooks run postdeploy" >&2
    exit 1
  fi
  sleep "$KEY_POLL_SECONDS"
  waited=$((waited + KEY_POLL_SECONDS))
  key=$(blobs_extension_key)
done

host=$(app show --query defaultHostName --output tsv)
[ -n "$host" ] || fail "could not read the host name of $AZURE_FUNCTION_APP_NAME"

body=$(mktemp)
trap 'rm -f "$body"' EXIT INT TERM
chmod 600 "$body"
cat >"$body" <<JSON
{
  "properties": {
    "destination": {
      "endpointType": "WebHook",
      "properties": {
        "endpointUrl": "https://$host/runtime/webhooks/blobs?functionName=Host.Functions.$FUNCTION_NAME&code=$(url_encode "$key")"
      }
    },
    "filter": {
      "includedEventTypes": ["Microsoft.Storage.BlobCreated"],
      "subjectBeginsWith": "/blobServices/default/containers/$SEGMENTS_CONTAINER/"
    },
    "eventDeliverySchema": "EventGridSchema",
    "retryPolicy": { "maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440 }
  }
}
JSON

topic="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.EventGrid/systemTopics/$EVENTGRID_SYSTEM_TOPIC_NAME"
# A relative URL: az rest prefixes the Resource Manager endpoint of the current cloud.
az rest --method put --output none --body "@$body" \
  --url "$topic/eventSubscriptions/$EVENT_SUBSCRIPTION_NAME?api-version=2022-06-15"

echo "postdeploy: Event Grid subscription '$EVENT_SUBSCRIPTION_NAME' sends BlobCreated events" \
  "under '$SEGMENTS_CONTAINER/' to $FUNCTION_NAME on $host"
