#!/usr/bin/env bash
# Creates the virtual environment bench/llm.ts runs LiteLLM's proxy from, outside the repository.
# The `[proxy]` extra of recent LiteLLM releases pins packages the package index here does not serve, so the
# proxy's dependencies are named one by one (the list the issue gives).
set -euo pipefail
venv="${BENCH_LITELLM_VENV:-$HOME/.cache/svidecar/litellm-venv}"
[ -x "$venv/bin/litellm" ] && { echo "LiteLLM already in $venv"; exit 0; }
python3 -m venv "$venv"
"$venv/bin/pip" install -q "litellm==1.108.14" fastapi uvicorn granian uvloop orjson pyyaml backoff apscheduler rq \
  hiredis fastapi-sso pyjwt python-multipart cryptography pynacl websockets gunicorn mcp httpx2 \
  "litellm-proxy-extras==0.4.110" litellm-enterprise restrictedpython rich tomlkit expression boto3 azure-identity \
  azure-storage-blob inquirerpy polars soundfile
echo "LiteLLM installed in $venv"
