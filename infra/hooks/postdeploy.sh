#!/bin/sh
# azd postdeploy hook: subscribe the segment_uploaded function to the BlobCreated events of the
# segments container. It runs after the code is deployed because the webhook URL needs the app's
# blobs_extension system key, which the host creates once it has indexed the blob trigger.
#
# 1. The Azure CLI has its own sign-in (`azd auth login` does not sign `az` in): check it first.
# 2. Wait for the blobs_extension key.
# 3. Create (or update) the subscription with `az eventgrid system-topic event-subscription create`,
#    which waits for Event Grid's asynchronous webhook validation and fails with Event Grid's reason
#    when the handshake fails; then check that its provisioningState is Succeeded.
#
# The key is never printed or passed on a command line: the endpoint URL goes into a private temp
# file that az reads (`--endpoint @file`), anything az prints has the key masked, and the file is
# deleted on exit. Exit codes: 2 missing inputs, 1 Azure refused (the message says what to do).
#
# Outside azd, export the deployment outputs named below and run this script (README: Deploy).
# The Windows variant is postdeploy.ps1 (azure.yaml picks it); keep the two in step.
set -eu

fail() {
  echo "postdeploy: $*" >&2
  exit 2
}

die() {
  echo "postdeploy: $*" >&2
  exit 1
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

command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not installed: https://aka.ms/azure-cli"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
chmod 700 "$work"
key=
encoded_key=

# az's messages, with the key (plain and percent-encoded) masked, on one line each.
masked() {
  KEY="$key" ENCODED_KEY="$encoded_key" awk '
    {
      line = $0
      split(ENVIRON["KEY"] "\n" ENVIRON["ENCODED_KEY"], secrets, "\n")
      for (i = 1; i <= 2; i++) {
        secret = secrets[i]
        if (secret == "") continue
        while ((at = index(line, secret)) > 0)
          line = substr(line, 1, at - 1) "***" substr(line, at + length(secret))
      }
      if (line != "") print "  " line
    }' "$1"
}

# 1. Signed in to the right subscription?
if ! az account show --subscription "$AZURE_SUBSCRIPTION_ID" --query id --output tsv \
  >/dev/null 2>"$work/account.err"; then
  echo "postdeploy: the Azure CLI is not signed in to subscription $AZURE_SUBSCRIPTION_ID." >&2
  echo "  azd and az sign in separately: run \`az login\` (az account set --subscription" \
    "$AZURE_SUBSCRIPTION_ID if you have several), then \`azd hooks run postdeploy\`. az said:" >&2
  masked "$work/account.err" >&2
  exit 1
fi

app() {
  az functionapp "$@" --subscription "$AZURE_SUBSCRIPTION_ID" \
    --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME"
}

# Sets key to the blobs_extension system key, or to nothing while the host has not created it.
read_key() {
  if ! key=$(app keys list --query "systemKeys.blobs_extension" --output tsv 2>"$work/keys.err"); then
    key=
    masked "$work/keys.err" >&2
    die "could not read the system keys of $AZURE_FUNCTION_APP_NAME (above: what az said)"
  fi
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

# 2. The key exists once the host has indexed the blob trigger.
waited=0
read_key
while [ -z "$key" ]; do
  if [ "$waited" -ge "$KEY_WAIT_SECONDS" ]; then
    die "$AZURE_FUNCTION_APP_NAME has no blobs_extension key after ${waited}s;" \
      "is $FUNCTION_NAME deployed? Retry with: azd hooks run postdeploy"
  fi
  sleep "$KEY_POLL_SECONDS"
  waited=$((waited + KEY_POLL_SECONDS))
  read_key
done
encoded_key=$(url_encode "$key")

host=$(app show --query defaultHostName --output tsv 2>"$work/show-app.err") || {
  masked "$work/show-app.err" >&2
  die "could not read the host name of $AZURE_FUNCTION_APP_NAME"
}
[ -n "$host" ] || die "could not read the host name of $AZURE_FUNCTION_APP_NAME"

# 3. The subscription. `create` is a long-running operation that az waits for: it ends when Event
# Grid has validated the webhook (the host answers the handshake) or failed to.
endpoint="$work/endpoint"
(umask 077 && printf '%s' \
  "https://$host/runtime/webhooks/blobs?functionName=Host.Functions.$FUNCTION_NAME&code=$encoded_key" >"$endpoint")

subscription() {
  az eventgrid system-topic event-subscription "$@" --subscription "$AZURE_SUBSCRIPTION_ID" \
    --resource-group "$AZURE_RESOURCE_GROUP" --system-topic-name "$EVENTGRID_SYSTEM_TOPIC_NAME" \
    --name "$EVENT_SUBSCRIPTION_NAME"
}

if ! subscription create --endpoint-type webhook --endpoint "@$endpoint" \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "/blobServices/default/containers/$SEGMENTS_CONTAINER/" \
  --event-delivery-schema eventgridschema --max-delivery-attempts 30 --event-ttl 1440 \
  --output none 2>"$work/create.err"; then
  echo "postdeploy: Event Grid did not accept the subscription '$EVENT_SUBSCRIPTION_NAME' to" \
    "$FUNCTION_NAME on $host. Event Grid said:" >&2
  masked "$work/create.err" >&2
  die "uploads will not start runs until this succeeds; fix the cause, then: azd hooks run postdeploy"
fi

state=$(subscription show --query provisioningState --output tsv 2>"$work/show.err") || {
  masked "$work/show.err" >&2
  die "could not read the state of the subscription '$EVENT_SUBSCRIPTION_NAME'"
}
[ "$state" = "Succeeded" ] || die "the subscription '$EVENT_SUBSCRIPTION_NAME' is '$state', not" \
  "Succeeded: see it in the portal (Event Grid system topic $EVENTGRID_SYSTEM_TOPIC_NAME), then:" \
  "azd hooks run postdeploy"

echo "postdeploy: Event Grid subscription '$EVENT_SUBSCRIPTION_NAME' sends BlobCreated events" \
  "under '$SEGMENTS_CONTAINER/' to $FUNCTION_NAME on $host (webhook validated)"
