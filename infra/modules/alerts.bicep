// Alerts for operators, e-mailed through one action group (deployed only when alertEmail is set):
// a failed run, a run with too many rejected or failed rows, a run that took too long (all three
// from the ExportRunFinished event, shared/telemetry.py) and messages put into a poison queue
// (from the queue service's resource logs). The queries are in infra/queries/alert-*.kql.
param location string
param tags object
@description('Address the alerts are e-mailed to.')
param alertEmail string
@description('Log Analytics workspace holding AppEvents (Application Insights) and StorageQueueLogs.')
param logAnalyticsWorkspaceId string
@minValue(1)
@maxValue(100)
@description('Alert when a run rejects or fails more than this percentage of its rows.')
param rejectedOrFailedPercent int
@minValue(1)
@maxValue(72)
@description('Alert when a run takes longer than this many hours.')
param runHours int
param poisonQueueName string
param poisonPoisonQueueName string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-omnisend-export'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'omnisend'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var rules = [
  {
    name: 'export-run-failed'
    displayName: 'Omnisend export: a run failed'
    description: 'An export run ended as failed: its error (bad API key, missing segment, unreadable input) is on the run (GET /api/runs/{runId}).'
    severity: 1
    query: loadTextContent('../queries/alert-run-failed.kql')
  }
  {
    name: 'export-rows-rejected-or-failed'
    displayName: 'Omnisend export: too many rows rejected or failed'
    description: 'A finished run rejected or failed more than ${rejectedOrFailedPercent}% of its rows: see its rejects file (GET /api/runs/{runId}/rejects).'
    severity: 2
    query: replace(loadTextContent('../queries/alert-rows-rejected-or-failed.kql'), '__PERCENT__', string(rejectedOrFailedPercent))
  }
  {
    name: 'export-run-too-long'
    displayName: 'Omnisend export: a run took too long'
    description: 'A run took longer than ${runHours} hours from start to end.'
    severity: 3
    query: replace(loadTextContent('../queries/alert-long-run.kql'), '__HOURS__', string(runHours))
  }
  {
    name: 'export-poison-messages'
    displayName: 'Omnisend export: messages in a poison queue'
    description: 'A chunk failed every delivery attempt and its rows were counted as failed, or the poison handler itself failed (${poisonPoisonQueueName}).'
    severity: 2
    query: replace(replace(loadTextContent('../queries/alert-poison-messages.kql'), '__POISON_QUEUE__', poisonQueueName), '__POISON_POISON_QUEUE__', poisonPoisonQueueName)
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: rule.name
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    scopes: [
      logAnalyticsWorkspaceId
    ]
    // The tables appear with their first rows (AppEvents with the first run's event).
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Each alert is about runs that already ended: nothing to resolve automatically.
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
