// The function app on the Flex Consumption plan (FC1), Python 3.11, running as the user-assigned
// identity for everything: host storage, the deployment package, Key Vault and telemetry.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string
param keyVaultUri string
param segmentsContainerName string
param stateContainerName string
param exportQueueName string
param exportSchedule string
param omnisendApiUrl string
param chunkRows int
param maximumInstanceCount int
param instanceMemoryMB int
param authClientId string
param authTenantId string
@description('Log Analytics workspace that receives the app\'s resource logs (FunctionAppLogs).')
param logAnalyticsWorkspaceId string

var authEnabled = !empty(authClientId)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // #checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption is offered in a subset of regions and bills always-ready instances; an export is idempotent and is re-run after a zonal outage
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // #checkov:skip=CKV_AZURE_222:Callers (browsers and scripts with Entra tokens through Easy Auth) and Event Grid's webhook reach the app over the internet; private endpoints need a VNet this template does not create
  // #checkov:skip=CKV_AZURE_17:Callers authenticate with Entra tokens (Easy Auth; the app checks their app roles); Event Grid webhook deliveries cannot present a client certificate
  // #checkov:skip=CKV_AZURE_212:numberOfWorkers does not apply to Flex Consumption, which scales per event from zero; always-ready instances would bill around the clock for a nightly batch
  // #checkov:skip=CKV_AZURE_213:Flex Consumption has no fixed instance pool for App Service health check to evict from; failures surface in Application Insights and in each export's row accounting
  // #checkov:skip=CKV_AZURE_78:Flex Consumption has no FTP or FTPS endpoint and ARM rejects siteConfig.ftpsState on a Flex site (code 51021); code is only deployed to the package container
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No ftpsState: ARM rejects it on a Flex Consumption site (none of Microsoft's Flex templates set it).
      http20Enabled: true
      // Setting names are the strings shared/settings.py reads (tests/infra checks both directions).
      appSettings: [
        // Identity-based host storage: service URIs, the managed identity, and which identity.
        { name: 'AzureWebJobsStorage__blobServiceUri', value: blobEndpoint }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: queueEndpoint }
        // The host writes its diagnostic events to tables; without this setting it logs errors.
        { name: 'AzureWebJobsStorage__tableServiceUri', value: tableEndpoint }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        { name: 'KEY_VAULT_URL', value: keyVaultUri }
        { name: 'SEGMENTS_CONTAINER', value: segmentsContainerName }
        { name: 'STATE_CONTAINER', value: stateContainerName }
        { name: 'EXPORT_QUEUE', value: exportQueueName }
        { name: 'EXPORT_SCHEDULE', value: exportSchedule }
        { name: 'OMNISEND_API_URL', value: omnisendApiUrl }
        { name: 'CHUNK_ROWS', value: string(chunkRows) }
        { name: 'RUN_STALL_MINUTES', value: '30' }
        { name: 'RUN_MAX_HOURS', value: '6' }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Optional Easy Auth (modules/easy-auth.bicep), deployed only with a client ID: without one there is
// nothing to validate tokens against. To turn Easy Auth off after it was on, disable it on the app
// too (README: Deploy to Azure), since an absent resource removes nothing.
module easyAuth 'easy-auth.bicep' = if (authEnabled) {
  name: 'easy-auth'
  params: {
    siteName: site.name
    authClientId: authClientId
    authTenantId: authTenantId
  }
}

// FunctionAppLogs (host and function logs, one row per line) to Log Analytics, beside Application
// Insights: kept with the workspace's retention and queryable with the storage and vault logs.
resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'FunctionAppLogs', enabled: true }
    ]
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output uri string = 'https://${site.properties.defaultHostName}'
