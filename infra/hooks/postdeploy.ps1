# azd postdeploy hook for Windows (PowerShell 7): the same steps as postdeploy.sh, which azd runs on
# macOS and Linux (azure.yaml picks one per platform); keep the two in step.
#
# Subscribes the segment_uploaded function to the BlobCreated events of the segments container:
# 1. The Azure CLI has its own sign-in (`azd auth login` does not sign `az` in): check it first.
# 2. Wait for the app's blobs_extension system key (the host creates it once it has indexed the trigger).
# 3. Create (or update) the subscription with `az eventgrid system-topic event-subscription create`,
#    which waits for Event Grid's webhook validation and fails with Event Grid's reason; then check
#    that its provisioningState is Succeeded.
#
# The key is never printed or passed on a command line: the endpoint URL goes into a private temp
# file that az reads (`--endpoint @file`), az's messages have the key masked, and the file is deleted.
# Exit codes: 2 missing inputs, 1 Azure refused (the message says what to do).
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

function Fail([string]$Message) {
    [Console]::Error.WriteLine("postdeploy: $Message")
    exit 2
}

function Die([string]$Message) {
    [Console]::Error.WriteLine("postdeploy: $Message")
    exit 1
}

foreach ($setting in 'AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME',
    'EVENTGRID_SYSTEM_TOPIC_NAME', 'SEGMENTS_CONTAINER') {
    if (-not [Environment]::GetEnvironmentVariable($setting)) {
        Fail "$setting is not set (run through azd, or set the deployment outputs)"
    }
}

$FunctionName = if ($env:FUNCTION_NAME) { $env:FUNCTION_NAME } else { 'segment_uploaded' }
$EventSubscriptionName = if ($env:EVENT_SUBSCRIPTION_NAME) { $env:EVENT_SUBSCRIPTION_NAME } else { 'segment-uploaded' }
# The host may need a minute after deployment to index the functions and create the key.
$KeyWaitSeconds = if ($env:KEY_WAIT_SECONDS) { [int]$env:KEY_WAIT_SECONDS } else { 300 }
$KeyPollSeconds = if ($env:KEY_POLL_SECONDS) { [int]$env:KEY_POLL_SECONDS } else { 10 }

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    Fail 'the Azure CLI (az) is not installed: https://aka.ms/azure-cli'
}

$work = Join-Path ([IO.Path]::GetTempPath()) ([IO.Path]::GetRandomFileName())
New-Item -ItemType Directory -Path $work | Out-Null
$script:key = ''
$script:encodedKey = ''

# az's messages, with the key (plain and percent-encoded) masked.
function Write-Masked([string]$Path) {
    foreach ($line in @(Get-Content -Path $Path -ErrorAction SilentlyContinue)) {
        foreach ($secret in @($script:key, $script:encodedKey)) {
            if ($secret) { $line = $line.Replace($secret, '***') }
        }
        if ($line) { [Console]::Error.WriteLine("  $line") }
    }
}

$common = @('--subscription', $env:AZURE_SUBSCRIPTION_ID, '--resource-group', $env:AZURE_RESOURCE_GROUP)
$app = $common + @('--name', $env:AZURE_FUNCTION_APP_NAME)
$subscription = $common + @('--system-topic-name', $env:EVENTGRID_SYSTEM_TOPIC_NAME, '--name', $EventSubscriptionName)

try {
    # 1. Signed in to the right subscription?
    az account show --subscription $env:AZURE_SUBSCRIPTION_ID --query id --output tsv 2> "$work/account.err" | Out-Null
    if ($LASTEXITCODE -ne 0) {
        [Console]::Error.WriteLine("postdeploy: the Azure CLI is not signed in to subscription $env:AZURE_SUBSCRIPTION_ID.")
        [Console]::Error.WriteLine("  azd and az sign in separately: run ``az login`` (az account set --subscription $env:AZURE_SUBSCRIPTION_ID if you have several), then ``azd hooks run postdeploy``. az said:")
        Write-Masked "$work/account.err"
        exit 1
    }

    # 2. The key exists once the host has indexed the blob trigger.
    function Read-Key {
        $found = az functionapp keys list @app --query 'systemKeys.blobs_extension' --output tsv 2> "$work/keys.err"
        if ($LASTEXITCODE -ne 0) {
            Write-Masked "$work/keys.err"
            Die "could not read the system keys of $env:AZURE_FUNCTION_APP_NAME (above: what az said)"
        }
        return "$found".Trim()
    }

    $waited = 0
    $script:key = Read-Key
    while (-not $script:key) {
        if ($waited -ge $KeyWaitSeconds) {
            Die "$env:AZURE_FUNCTION_APP_NAME has no blobs_extension key after ${waited}s; is $FunctionName deployed? Retry with: azd hooks run postdeploy"
        }
        Start-Sleep -Seconds $KeyPollSeconds
        $waited += $KeyPollSeconds
        $script:key = Read-Key
    }
    # RFC 3986 unreserved characters stay, everything else is percent-encoded (keys may hold '+', '/', '=').
    $script:encodedKey = [Uri]::EscapeDataString($script:key)

    $hostName = "$(az functionapp show @app --query defaultHostName --output tsv 2> "$work/show-app.err")".Trim()
    if ($LASTEXITCODE -ne 0 -or -not $hostName) {
        Write-Masked "$work/show-app.err"
        Die "could not read the host name of $env:AZURE_FUNCTION_APP_NAME"
    }

    # 3. The subscription: az waits for the long-running create, which ends when Event Grid has
    # validated the webhook (the host answers the handshake) or failed to.
    $endpoint = Join-Path $work 'endpoint'
    $url = "https://$hostName/runtime/webhooks/blobs?functionName=Host.Functions.$FunctionName&code=$($script:encodedKey)"
    Set-Content -Path $endpoint -Value $url -NoNewline -Encoding ascii

    az eventgrid system-topic event-subscription create @subscription --endpoint-type webhook --endpoint "@$endpoint" `
        --included-event-types Microsoft.Storage.BlobCreated `
        --subject-begins-with "/blobServices/default/containers/$env:SEGMENTS_CONTAINER/" `
        --event-delivery-schema eventgridschema --max-delivery-attempts 30 --event-ttl 1440 `
        --output none 2> "$work/create.err"
    if ($LASTEXITCODE -ne 0) {
        [Console]::Error.WriteLine("postdeploy: Event Grid did not accept the subscription '$EventSubscriptionName' to $FunctionName on $hostName. Event Grid said:")
        Write-Masked "$work/create.err"
        Die 'uploads will not start runs until this succeeds; fix the cause, then: azd hooks run postdeploy'
    }

    $state = "$(az eventgrid system-topic event-subscription show @subscription --query provisioningState --output tsv 2> "$work/show.err")".Trim()
    if ($LASTEXITCODE -ne 0) {
        Write-Masked "$work/show.err"
        Die "could not read the state of the subscription '$EventSubscriptionName'"
    }
    if ($state -ne 'Succeeded') {
        Die "the subscription '$EventSubscriptionName' is '$state', not Succeeded: see it in the portal (Event Grid system topic $env:EVENTGRID_SYSTEM_TOPIC_NAME), then: azd hooks run postdeploy"
    }

    Write-Output "postdeploy: Event Grid subscription '$EventSubscriptionName' sends BlobCreated events under '$env:SEGMENTS_CONTAINER/' to $FunctionName on $hostName (webhook validated)"
}
finally {
    Remove-Item -Recurse -Force -Path $work -ErrorAction SilentlyContinue
}
