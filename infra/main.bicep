// Everything the export app needs, in one resource-group deployment, with no shared keys and no
// secrets in settings. Deploy with `azd up`, or `az deployment group create` (see README).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd); seeds the unique suffix of every resource name.')
param environmentName string

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Blob container Customer Insights exports segments to (SEGMENTS_CONTAINER).')
param segmentsContainerName string = 'segments'

@description('Blob container of export state: runs, row outcomes, connections (STATE_CONTAINER).')
param stateContainerName string = 'export-state'

@description('Queue of export chunks (EXPORT_QUEUE); its poison queue is this name + "-poison".')
param exportQueueName string = 'export-chunks'

@description('NCRONTAB schedule of the scheduled exports (EXPORT_SCHEDULE), in UTC.')
param exportSchedule string = '0 0 2 * * *'

@description('Base URL of the Omnisend REST API (OMNISEND_API_URL).')
param omnisendApiUrl string = 'https://api.omnisend.com/api'

@minValue(100)
@maxValue(5000)
@description('Rows per queued chunk of an export (CHUNK_ROWS).')
param chunkRows int = 1000

// Flex Consumption accepts 40 to 1000 ("the lowest maximum scale is currently 40").
@minValue(40)
@maxValue(1000)
@description('Flex Consumption: the most instances the app scales out to (40-1000).')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption: memory of each instance, in MB.')
param instanceMemoryMB int = 2048

@description('Client ID of the Entra app registration (app roles Exports.Admin, Exports.Contributor) that Easy Auth requires tokens for; empty: Easy Auth off.')
param authClientId string = ''

@description('Tenant of that app registration.')
param authTenantId string = tenant().tenantId

@description('Object ID of the service principal Customer Insights writes blob exports with; empty: no role assignment.')
param customerInsightsPrincipalId string = ''

@description('Varies the Key Vault name. A deleted vault keeps its name for 90 days (soft delete, purge protection), so after `azd down` the postdown hook sets a new seed and the next `azd up` creates a vault with a new name. Empty: the original name.')
param keyVaultSeed string = ''

@description('E-mail address for alerts (failed run, rejected/failed rows, long run, poison messages); empty: no alerts.')
param alertEmail string = ''

@minValue(1)
@maxValue(100)
@description('Alert when a finished run rejected or failed more than this percentage of its rows.')
param alertRejectedOrFailedPercent int = 5

@minValue(1)
@maxValue(72)
@description('Alert when a run took longer than this many hours.')
param alertRunHours int = 4

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var systemTopicName = 'evgt-${resourceToken}'
// Vault names are global and a deleted vault keeps its name while it is soft-deleted (purge
// protection forbids purging it): a new seed gives a new name (see keyVaultSeed).
var keyVaultName = empty(keyVaultSeed) ? 'kv-${resourceToken}' : 'kv-${uniqueString(resourceToken, keyVaultSeed)}'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    segmentsContainerName: segmentsContainerName
    stateContainerName: stateContainerName
    deploymentContainerName: deploymentContainerName
    exportQueueName: exportQueueName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module queries 'modules/queries.bicep' = {
  name: 'queries'
  params: {
    name: 'pack-${resourceToken}'
    location: location
    tags: tags
  }
}

module alerts 'modules/alerts.bicep' = if (!empty(alertEmail)) {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    alertEmail: alertEmail
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    rejectedOrFailedPercent: alertRejectedOrFailedPercent
    runHours: alertRunHours
    poisonQueueName: storage.outputs.exportPoisonQueueName
    poisonPoisonQueueName: storage.outputs.exportPoisonPoisonQueueName
  }
}

module roles 'modules/role-assignments.bicep' = {
  name: 'role-assignments'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    segmentsContainerName: storage.outputs.segmentsContainerName
    stateContainerName: storage.outputs.stateContainerName
    deploymentContainerName: storage.outputs.deploymentContainerName
    hostsContainerName: storage.outputs.hostsContainerName
    secretsContainerName: storage.outputs.secretsContainerName
    exportQueueName: storage.outputs.exportQueueName
    exportPoisonQueueName: storage.outputs.exportPoisonQueueName
    exportPoisonPoisonQueueName: storage.outputs.exportPoisonPoisonQueueName
    blobTriggerPoisonQueueName: storage.outputs.blobTriggerPoisonQueueName
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    customerInsightsPrincipalId: customerInsightsPrincipalId
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  // The host starts with the identity's roles in place, or its first storage calls fail.
  dependsOn: [
    roles
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    keyVaultUri: keyVault.outputs.uri
    segmentsContainerName: storage.outputs.segmentsContainerName
    stateContainerName: storage.outputs.stateContainerName
    exportQueueName: storage.outputs.exportQueueName
    exportSchedule: exportSchedule
    omnisendApiUrl: omnisendApiUrl
    chunkRows: chunkRows
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    authClientId: authClientId
    authTenantId: authTenantId
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    name: systemTopicName
    location: location
    tags: tags
    storageAccountId: storage.outputs.id
  }
}

// Read by azd (and exported to the post-deploy hook) and by the README's deploy steps.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_ACCOUNT_ID string = storage.outputs.id
output SEGMENTS_CONTAINER string = storage.outputs.segmentsContainerName
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output KEY_VAULT_URL string = keyVault.outputs.uri
output KEY_VAULT_NAME string = keyVault.outputs.name
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.logAnalyticsWorkspaceName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output ALERTS_ENABLED bool = !empty(alertEmail)
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AUTH_ENABLED bool = !empty(authClientId)
