// Saved KQL queries for operators, in a query pack: Log Analytics workspace → Logs → Queries →
// "Omnisend export". Their text is in infra/queries/*.kql (the same files the README points to).
param name string
param location string
param tags object

var queries = [
  {
    key: 'run-history'
    displayName: 'Omnisend export: run history'
    description: 'One row per finished export run: trigger, status, rows sent, rejected, failed, untagged, minutes, 429s.'
    body: loadTextContent('../queries/run-history.kql')
  }
  {
    key: 'failure-rates'
    displayName: 'Omnisend export: failure rates per export and day'
    description: 'Runs, failed runs and the share of rows rejected or failed, per export and day.'
    body: loadTextContent('../queries/failure-rates.kql')
  }
  {
    key: 'failed-chunks'
    displayName: 'Omnisend export: failed chunks'
    description: 'Chunks whose rows all failed, with the recorded reason.'
    body: loadTextContent('../queries/failed-chunks.kql')
  }
]

resource queryPack 'Microsoft.OperationalInsights/queryPacks@2019-09-01' = {
  name: name
  location: location
  tags: tags
  properties: {}
}

resource savedQueries 'Microsoft.OperationalInsights/queryPacks/queries@2019-09-01' = [for query in queries: {
  parent: queryPack
  name: guid(queryPack.id, query.key)
  properties: {
    displayName: query.displayName
    description: query.description
    body: query.body
    related: {
      categories: [
        'applications'
      ]
      resourceTypes: [
        'microsoft.operationalinsights/workspaces'
      ]
    }
    tags: {
      labels: [
        'Omnisend export'
      ]
    }
  }
}]

output id string = queryPack.id
