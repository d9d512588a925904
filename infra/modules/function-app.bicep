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
  // #checkov:skip=CKV_AZURE_222:Callers (function key, optional Easy Auth) and Event Grid's webhook reach the app over the internet; private endpoints need a VNet this template does not create
  // #checkov:skip=CKV_AZURE_17:Callers authenticate with Entra tokens and function keys; Event Grid webhook deliveries cannot present a client certificate
  // #checkov:skip=CKV_AZURE_212:numberOfWorkers does not apply to Flex Consumption, which scales per event from zero; always-ready instances would bill around the clock for a nightly batch
  // #checkov:skip=CKV_AZURE_213:Flex Consumption has no fixed instance pool for App Service health check to evict from; failures surface in Application Insights and in each export's row accounting
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
      ftpsState: 'Disabled'
      http20Enabled: true
      // Setting names are the strings shared/settings.py reads (tests/infra checks both directions).
      appSettings: [
        // Identity-based host storage: service URIs, the managed identity, and which identity.
        { name: 'AzureWebJobsStorage__blobServiceUri', value: blobEndpoint }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: queueEndpoint }
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

// Optional Easy Auth: callers need an Entra token for the app registration authClientId, whose app
// roles (Exports.Admin, Exports.Contributor) reach the code in the X-MS-CLIENT-PRINCIPAL header.
// Always declared, enabled only with a client ID, so turning it off later really turns it off.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov applies its App Service "web config" checks to every sites/config resource, this one too.
  // #checkov:skip=CKV_AZURE_13:This resource is the App Service Authentication (authsettingsV2, platform.enabled); the check only recognises the legacy authsettings resource
  // #checkov:skip=CKV_AZURE_63:Read as the web config, but this is authsettingsV2; HTTP requests are logged to Application Insights
  // #checkov:skip=CKV_AZURE_65:Read as the web config, but this is authsettingsV2; errors are logged to Application Insights
  // #checkov:skip=CKV_AZURE_66:Read as the web config, but this is authsettingsV2; failed requests are traced in Application Insights
  // #checkov:skip=CKV_AZURE_80:Read as the web config, but this is authsettingsV2; the app is Python, no .NET Framework
  // #checkov:skip=CKV_AZURE_88:Read as the web config, but this is authsettingsV2; Flex Consumption runs from a blob package, not an Azure Files share
  // #checkov:skip=CKV_AZURE_222:Read as the web config, but this is authsettingsV2; network access is set on the site (see its skip)
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: authEnabled
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // Event Grid delivers blob events here with the blobs_extension key, not an Entra token.
      excludedPaths: [
        '/runtime/webhooks/blobs'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: authEnabled
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            authClientId
            'api://${authClientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output uri string = 'https://${site.properties.defaultHostName}'
