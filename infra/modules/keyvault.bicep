// Key Vault for the Omnisend API keys the app stores (one secret per connection).
// Access is Entra RBAC only; deleted secrets stay recoverable and cannot be purged early.
param name string
param location string
param tags object
@description('Log Analytics workspace that receives the vault\'s audit log.')
param logAnalyticsWorkspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // #checkov:skip=CKV_AZURE_109:The Flex Consumption app has no VNet integration in this template, so it reaches the vault over the public endpoint; access is Entra RBAC only and only the app identity holds a secrets role
  // #checkov:skip=CKV_AZURE_189:The Flex Consumption app has no VNet integration in this template, so it reaches the vault over the public endpoint; access is Entra RBAC only and only the app identity holds a secrets role
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Every secret read, write and delete (AuditEvent), with the caller's identity, to Log Analytics
// (table AZKVAuditLogs): who read which Omnisend API key, and when.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      { category: 'AuditEvent', enabled: true }
    ]
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
