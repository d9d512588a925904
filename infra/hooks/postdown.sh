#!/bin/sh
# azd postdown hook: after `azd down`, give the next `azd up` a new Key Vault name.
#
# Vault names are global, and a deleted vault keeps its name for 90 days (soft delete with purge
# protection: it cannot be purged early). Without a new name, `azd up` after `azd down` fails on the
# soft-deleted vault. main.bicep derives the name from KEY_VAULT_SEED (keyVaultSeed), set here.
# The deleted vault, with the Omnisend API keys it held, stays recoverable for those 90 days
# (az keyvault recover). The Windows variant is postdown.ps1; keep the two in step.
set -eu

seed=$(date -u +%Y%m%d%H%M%S)
if [ -n "${AZURE_ENV_NAME:-}" ]; then
  azd env set KEY_VAULT_SEED "$seed" --environment "$AZURE_ENV_NAME"
else
  azd env set KEY_VAULT_SEED "$seed"
fi
echo "postdown: the next azd up names its Key Vault after KEY_VAULT_SEED=$seed; the deleted vault" \
  "stays recoverable for 90 days (az keyvault list-deleted)"
