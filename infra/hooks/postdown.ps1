# azd postdown hook for Windows (PowerShell 7): the same as postdown.sh; keep the two in step.
# After `azd down`, give the next `azd up` a new Key Vault name: vault names are global and a
# deleted vault keeps its name for 90 days (soft delete with purge protection). main.bicep derives
# the name from KEY_VAULT_SEED (keyVaultSeed), set here.
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$seed = (Get-Date).ToUniversalTime().ToString('yyyyMMddHHmmss')
if ($env:AZURE_ENV_NAME) {
    azd env set KEY_VAULT_SEED $seed --environment $env:AZURE_ENV_NAME
} else {
    azd env set KEY_VAULT_SEED $seed
}
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Output "postdown: the next azd up names its Key Vault after KEY_VAULT_SEED=$seed; the deleted vault stays recoverable for 90 days (az keyvault list-deleted)"
