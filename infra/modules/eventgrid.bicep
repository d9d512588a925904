// The Event Grid system topic for the storage account. Its BlobCreated subscription to the
// segment_uploaded function is made by the post-deploy hook: the webhook URL carries the
// blobs_extension key, which exists only once the code is deployed.
param name string
param location string
param tags object
param storageAccountId string

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = systemTopic.name
