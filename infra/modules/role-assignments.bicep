// Least-privilege role assignments of the app's identity, each on the narrowest scope Azure allows:
// a container, a queue, the vault, the Application Insights component. Only the table role sits on
// the account (see its comment). Every assignment says what needs it and why this role.
//
// The identity is used twice: by the Functions host for identity-based AzureWebJobsStorage (keys,
// leases, trigger bookkeeping, the deployment package) and by the app's own code (segments, export
// state, chunk messages, API keys, run telemetry). Microsoft documents the host's and each
// binding's roles: AzureWebJobsStorage needs Storage Blob Data Owner (+ Storage Table Data
// Contributor for diagnostic events); a blob trigger Storage Blob Data Owner and Storage Queue Data
// Contributor; a queue trigger Storage Queue Data Reader + Message Processor; a queue output Storage
// Queue Data Contributor. Here they are granted on the containers and queues those parts use, which
// the storage module creates up front (creating them would need a role on the whole account).
param principalId string
param storageAccountName string
param segmentsContainerName string
param stateContainerName string
param deploymentContainerName string
param hostsContainerName string
param secretsContainerName string
param exportQueueName string
param exportPoisonQueueName string
param exportPoisonPoisonQueueName string
param blobTriggerPoisonQueueName string
param keyVaultName string
param applicationInsightsName string
@description('Object ID of the service principal Customer Insights exports with; empty: no assignment.')
param customerInsightsPrincipalId string = ''

// Built-in role definition IDs (the same in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource segmentsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: segmentsContainerName
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: stateContainerName
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deploymentContainerName
}

resource hostsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: hostsContainerName
}

resource secretsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: secretsContainerName
}

resource exportQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: exportQueueName
}

resource exportPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: exportPoisonQueueName
}

resource exportPoisonPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: exportPoisonPoisonQueueName
}

resource blobTriggerPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: blobTriggerPoisonQueueName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// --- The Functions host (identity-based AzureWebJobsStorage) -------------------------------------

// Host: blob leases (timer singleton, listener locks) and the blob trigger's receipts. Owner, as
// Microsoft documents for AzureWebJobsStorage and for the blob trigger; on this container only.
resource hostBlobOwnerOnHostsContainer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostsContainer.id, principalId, storageBlobDataOwner)
  scope: hostsContainer
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
  }
}

// Host: the function and system keys (blobs_extension signs Event Grid's webhook calls). Owner, as
// documented for AzureWebJobsStorage; on this container only.
resource hostBlobOwnerOnSecretsContainer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(secretsContainer.id, principalId, storageBlobDataOwner)
  scope: secretsContainer
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
  }
}

// Host: Flex Consumption's deployment writes the app package into this container with the identity
// (azd deploy, func publish) and every instance reads it at start: read/write, no more.
resource hostBlobContributorOnDeploymentContainer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, principalId, storageBlobDataContributor)
  scope: deploymentContainer
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

// Host: diagnostic events go to tables named per month (AzureFunctionsDiagnosticEvents<yyyyMM>),
// created by the host when a month starts. A table role can only be scoped to a table that exists,
// so this one role is on the account; it grants table data only, no blob or queue access.
resource hostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageTableDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
  }
}

// Host: segment_uploaded's blob trigger moves a blob that failed every attempt to this queue
// (Microsoft documents Storage Queue Data Contributor for the blob trigger); this queue only.
resource hostQueueContributorOnBlobTriggerPoison 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(blobTriggerPoisonQueue.id, principalId, storageQueueDataContributor)
  scope: blobTriggerPoisonQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

// --- The app's own data (and the triggers on it) -------------------------------------------------

// App: reads Customer Insights' exports (model.json, partitions); the blob trigger reads a new
// blob's properties. Read-only: nothing in the app writes or deletes segments.
resource appBlobReaderOnSegments 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(segmentsContainer.id, principalId, storageBlobDataReader)
  scope: segmentsContainer
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
  }
}

// App: connections, exports, runs, chunk results, rejects files and rate budgets, written with
// ETags and deleted with their export: read/write/delete, on this container only.
resource appBlobContributorOnState 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateContainer.id, principalId, storageBlobDataContributor)
  scope: stateContainer
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

// App sends chunk messages (and re-enqueues deferred ones with a delay); process_chunk's queue
// trigger receives, hides and deletes them. Contributor covers both on this queue only.
resource queueContributorOnExportQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportQueue.id, principalId, storageQueueDataContributor)
  scope: exportQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

// The host moves a message that failed maxDequeueCount times here (a send); chunk_poison's queue
// trigger receives and deletes it. Contributor on this queue only.
resource queueContributorOnExportPoisonQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportPoisonQueue.id, principalId, storageQueueDataContributor)
  scope: exportPoisonQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

// The host moves a poison message chunk_poison itself failed on here; nothing reads it but people
// (and the poison-queue alert). Contributor on this queue only, so the host can send to it.
resource queueContributorOnExportPoisonPoisonQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportPoisonPoisonQueue.id, principalId, storageQueueDataContributor)
  scope: exportPoisonPoisonQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

// App: writes the Omnisend API key of a new connection and deletes it with the connection, so
// Officer, not Secrets User (read-only); on this vault only, which holds nothing else.
resource appKeyVaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
  }
}

// Host and app: Application Insights has local (key) auth off, so telemetry is sent with an Entra
// token; Monitoring Metrics Publisher is the role ingestion accepts, on this component only.
resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
  }
}

// Lets Customer Insights write its blob export into the segments container, and nowhere else.
resource customerInsightsBlobWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(customerInsightsPrincipalId)) {
  name: guid(segmentsContainer.id, customerInsightsPrincipalId, storageBlobDataContributor)
  scope: segmentsContainer
  properties: {
    principalId: customerInsightsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}
