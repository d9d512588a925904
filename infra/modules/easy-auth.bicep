// App Service Authentication (Easy Auth) for the function app: callers need an Entra token for the
// app registration authClientId, whose app roles (Exports.Admin, Exports.Contributor) reach the code
// in the X-MS-CLIENT-PRINCIPAL header. function-app.bicep deploys this module only with a client ID.
param siteName string
param authClientId string
param authTenantId string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

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
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // Only these two paths skip Easy Auth; everything else, the web console at / included, needs a token.
      excludedPaths: [
        // Event Grid delivers blob events here with the blobs_extension key, not an Entra token.
        '/runtime/webhooks/blobs'
        // Probes carry no token (the function is anonymous and answers without touching data).
        // The path follows host.json's routePrefix (api); tests/infra checks the two agree.
        '/api/health'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
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
