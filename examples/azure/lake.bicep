// Storage-only variant of main.bicep: no Event Hubs. The collectors' capture sink uploads
// Capture-format Avro files straight into an ADLS Gen2 container (--capture-url), so all this
// deploys is the account, the container, and the role that lets the collectors' identity write.
//
//   az deployment group create -g <rg> -f examples/azure/lake.bicep -p collectorPrincipalId=<object id>
//
// See README.md next to this file ("Storage only") and docs/lake.md.

@description('Prefix for every resource name (letters and digits, 3-11 characters).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'clicks'

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Object id of the identity the collectors run as: the system-assigned managed identity of their VM, Container App or App Service, or a user, group or service principal. Gets Storage Blob Data Contributor on the account. Leave empty to skip.')
param collectorPrincipalId string = ''

@description('Type of collectorPrincipalId.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param collectorPrincipalType string = 'ServicePrincipal'

@description('Allow account-key and SAS access. A managed identity needs no key: false leaves Microsoft Entra ID as the only way in.')
param allowSharedKeyAccess bool = true

var suffix = uniqueString(resourceGroup().id)
var storageName = toLower('${namePrefix}lake${suffix}')
var captureContainer = 'capture'
// Built-in role "Storage Blob Data Contributor".
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

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
    allowSharedKeyAccess: allowSharedKeyAccess
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

// On the account, as docs/lake.md does with `az role assignment create`; `scope: container`
// would confine the collectors to the capture container.
resource contributorRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(collectorPrincipalId)) {
  name: guid(storage.id, collectorPrincipalId, blobDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: collectorPrincipalId
    principalType: collectorPrincipalType
  }
}

@description('ADLS Gen2 account: the collectors\' AZURE_STORAGE_ACCOUNT_NAME.')
output storageAccountName string = storage.name

@description('Container receiving the capture files.')
output captureContainer string = captureContainer

@description('The collectors\' COLLECTOR_CAPTURE_URL.')
output captureUrl string = 'abfss://${captureContainer}@${storage.name}.dfs.${environment().suffixes.storage}/'
