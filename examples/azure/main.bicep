// Azure side of the clickstream stack: an Event Hubs namespace and hub that the collectors
// relay to, with Event Hubs Capture writing Avro to an ADLS Gen2 account (the same layout
// the collector's local capture sink writes), a consumer group for readers, and a send-only
// authorization rule for the collectors.
//
//   az deployment group create -g <rg> -f examples/azure/main.bicep -p namePrefix=clicks
//
// See README.md next to this file for the whole walk-through.

@description('Prefix for every resource name (letters and digits, 3-11 characters).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'clicks'

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Throughput units of the Standard namespace (1 TU = 1 MB/s or 1000 events/s in, 2 MB/s out).')
@minValue(1)
@maxValue(20)
param throughputUnits int = 1

@description('Let Event Hubs add throughput units under load, up to this many (0 = off; otherwise at least throughputUnits).')
@minValue(0)
@maxValue(20)
param maxThroughputUnits int = 4

@description('Name of the event hub the collectors send to.')
param eventHubName string = 'clickstream'

@description('Partitions: the ceiling for parallel readers; events of one visitor stay in one partition. Fixed after creation on Standard.')
@minValue(1)
@maxValue(32)
param partitionCount int = 4

@description('How long Event Hubs keeps events for readers, in days (Standard: up to 7).')
@minValue(1)
@maxValue(7)
param retentionDays int = 1

@description('Capture a file per partition at least this often, in seconds (60-900).')
@minValue(60)
@maxValue(900)
param captureIntervalSeconds int = 300

@description('...or when this many bytes have accumulated (10 MB - 500 MB).')
@minValue(10485760)
@maxValue(524288000)
param captureSizeLimitBytes int = 314572800

@description('Consumer group for downstream readers (stream processing, ad-hoc tools).')
param consumerGroupName string = 'analytics'

@description('Optional: object id of a managed identity (or user/group) that may send with Microsoft Entra ID instead of the connection string. Leave empty to skip.')
param senderPrincipalId string = ''

@description('Type of senderPrincipalId.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param senderPrincipalType string = 'ServicePrincipal'

var suffix = uniqueString(resourceGroup().id)
var namespaceName = '${namePrefix}-eh-${suffix}'
var storageName = toLower('${namePrefix}${suffix}')
var captureContainer = 'capture'
// Built-in role "Azure Event Hubs Data Sender".
var dataSenderRoleId = '2b629674-e913-4c01-ae53-ef4638d8f975'

// ADLS Gen2: a StorageV2 account with the hierarchical namespace on.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take(storageName, 24)
  location: location
  sku: {
    name: 'Standard_LRS'
  }
  kind: 'StorageV2'
  properties: {
    isHnsEnabled: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    accessTier: 'Hot'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: captureContainer
  properties: {
    publicAccess: 'None'
  }
}

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  // Capture needs Standard or above.
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: throughputUnits
  }
  properties: {
    minimumTlsVersion: '1.2'
    isAutoInflateEnabled: maxThroughputUnits > 0
    maximumThroughputUnits: maxThroughputUnits
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: retentionDays
    captureDescription: {
      enabled: true
      encoding: 'Avro'
      intervalInSeconds: captureIntervalSeconds
      sizeLimitInBytes: captureSizeLimitBytes
      skipEmptyArchives: true
      destination: {
        name: 'EventHubArchive.AzureBlockBlob'
        properties: {
          storageAccountResourceId: storage.id
          blobContainer: captureContainer
          // The default layout; the collector's local capture sink writes the same one.
          archiveNameFormat: '{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}'
        }
      }
    }
  }
  dependsOn: [
    container
  ]
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: consumerGroupName
  properties: {
    userMetadata: 'Readers of the clickstream'
  }
}

// The collectors get a key that can only send to this one hub.
resource sendRule 'Microsoft.EventHub/namespaces/eventhubs/authorizationRules@2024-01-01' = {
  parent: hub
  name: 'collector-send'
  properties: {
    rights: [
      'Send'
    ]
  }
}

resource senderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(senderPrincipalId)) {
  name: guid(hub.id, senderPrincipalId, dataSenderRoleId)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataSenderRoleId)
    principalId: senderPrincipalId
    principalType: senderPrincipalType
  }
}

@description('Fully qualified namespace: the collector\'s --eventhubs-namespace for Entra ID.')
output namespaceHost string = '${namespace.name}.servicebus.windows.net'

@description('Namespace name (first segment of the capture paths).')
output namespaceName string = namespace.name

@description('Event hub name: the collector\'s --eventhubs-name.')
output eventHubName string = hub.name

@description('Send-only rule; fetch its connection string with az (see README).')
output sendRuleName string = sendRule.name

@description('ADLS Gen2 account that receives the capture files.')
output storageAccountName string = storage.name

@description('Container holding the capture files.')
output captureContainer string = captureContainer

@description('Consumer group for readers.')
output consumerGroupName string = consumerGroup.name
