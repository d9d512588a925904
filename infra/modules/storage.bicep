// Storage for the host, the segments Customer Insights exports, the export state and the code package.
// Reached with Entra ID only: shared keys (and so connection strings and SAS) are disabled.
param name string
param location string
param tags object
param segmentsContainerName string
param stateContainerName string
param deploymentContainerName string
param exportQueueName string

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

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output segmentsContainerName string = segmentsContainer.name
output stateContainerName string = stateContainer.name
output deploymentContainerName string = deploymentContainer.name
output exportQueueName string = exportQueue.name
