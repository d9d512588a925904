// Storage for the host, the segments Customer Insights exports, the export state and the code package.
// Reached with Entra ID only: shared keys (and so connection strings and SAS) are disabled.
param name string
param location string
param tags object
param segmentsContainerName string
param stateContainerName string
param deploymentContainerName string
param exportQueueName string
@description('Log Analytics workspace that receives the blob and queue services\' resource logs.')
param logAnalyticsWorkspaceId string

// Containers and queues the Functions host itself uses. They are created here, not by the host at
// start-up, so that the app's identity needs roles on these containers and queues only (creating a
// container or queue needs a role on the whole account).
var hostsContainerName = 'azure-webjobs-hosts' // leases (timer singleton, listeners), blob trigger receipts
var secretsContainerName = 'azure-webjobs-secrets' // function and system keys (blobs_extension: the webhook key)
// The blob trigger moves a blob that failed every attempt here (Event Grid source too).
var blobTriggerPoisonQueueName = 'webjobs-blobtrigger-poison'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // #checkov:skip=CKV_AZURE_35:Customer Insights and the Flex Consumption app (no VNet integration in this template) reach the account over its public endpoint; shared keys are off, so every request needs an Entra token with a data role
  // #checkov:skip=CKV_AZURE_59:Public network access stays on because Customer Insights delivers its blob exports to the public endpoint; keys are disabled, so that endpoint answers Entra-authorised requests only
  // #checkov:skip=CKV_AZURE_206:Locally redundant is enough here: Customer Insights re-exports every segment on each refresh and a lost export run is re-run; geo-redundant SKUs are not offered in every region
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true }
        file: { enabled: true }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // Customer Insights blob exports fail when blob soft delete is on in the target account.
    deleteRetentionPolicy: {
      enabled: false
    }
  }
}

resource segmentsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: segmentsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource hostsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: hostsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource secretsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: secretsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource exportQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: exportQueueName
}

// The Functions host moves a message here after maxDequeueCount failures; chunk_poison reads it.
resource exportPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${exportQueueName}-poison'
}

// chunk_poison's own poison queue: where the host moves a poison message that chunk_poison failed on.
resource exportPoisonPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${exportQueueName}-poison-poison'
}

resource blobTriggerPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: blobTriggerPoisonQueueName
}

// Resource logs to Log Analytics (StorageBlobLogs, StorageQueueLogs): who read, wrote and deleted what,
// with which identity. Queue reads are left out: the queue trigger polls every few seconds on every
// instance, which would log tens of thousands of empty reads a day; writes and deletes are enough to
// follow messages (and the poison-queue alert counts the writes to the poison queues).
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output segmentsContainerName string = segmentsContainer.name
output stateContainerName string = stateContainer.name
output deploymentContainerName string = deploymentContainer.name
output exportQueueName string = exportQueue.name
output exportPoisonQueueName string = exportPoisonQueue.name
output exportPoisonPoisonQueueName string = exportPoisonPoisonQueue.name
output blobTriggerPoisonQueueName string = blobTriggerPoisonQueue.name
output hostsContainerName string = hostsContainer.name
output secretsContainerName string = secretsContainer.name
