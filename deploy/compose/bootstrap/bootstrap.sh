#!/bin/sh
# Prepares SPIRE for the compose demo, then exits 0: the trust bundle and a
# join token for the agent (on the shared bootstrap volume), and one
# registration entry per svidecar, told apart by the uid each runs as.
# Safe to run again: entries with a fixed ID are created once.
set -eu

: "${SPIRE_SERVER_SOCKET:=/tmp/spire-server/private/api.sock}"
: "${BOOTSTRAP_DIR:=/run/spire/bootstrap}"
: "${TRUST_DOMAIN:=example.org}"
: "${AGENT_SVIDECAR_UID:=10001}"
: "${MCP_SVIDECAR_UID:=10002}"
: "${LLM_SVIDECAR_UID:=10003}"
: "${SVID_TTL_SECONDS:=300}"

NODE_ID="spiffe://${TRUST_DOMAIN}/node/compose"

server() {
  command=$1
  subcommand=$2
  shift 2
  spire-server "$command" "$subcommand" -socketPath "$SPIRE_SERVER_SOCKET" "$@"
}

tries=0
until spire-server healthcheck -socketPath "$SPIRE_SERVER_SOCKET" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "bootstrap: spire-server not healthy after 60 s" >&2
    exit 1
  fi
  sleep 1
done

mkdir -p "$BOOTSTRAP_DIR"
spire-server bundle show -socketPath "$SPIRE_SERVER_SOCKET" >"$BOOTSTRAP_DIR/bundle.pem.new"
mv "$BOOTSTRAP_DIR/bundle.pem.new" "$BOOTSTRAP_DIR/bundle.pem"

# Single use; an agent that attested before keeps its SVID in its data volume and ignores it.
token=$(server token generate -spiffeID "$NODE_ID" -ttl 600 | sed -n 's/^Token: *//p')
if [ -z "$token" ]; then
  echo "bootstrap: no join token from spire-server" >&2
  exit 1
fi
umask 077
printf '%s\n' "$token" >"$BOOTSTRAP_DIR/join-token"
umask 022

entry() {
  id=$1
  spiffe_id=$2
  uid=$3
  hint=$4
  if server entry show -entryID "$id" >/dev/null 2>&1; then
    echo "bootstrap: entry $id ($spiffe_id) exists"
    return
  fi
  server entry create -entryID "$id" -parentID "$NODE_ID" -spiffeID "$spiffe_id" \
    -selector "unix:uid:$uid" -hint "$hint" -x509SVIDTTL "$SVID_TTL_SECONDS"
}

entry svidecar-agent "spiffe://${TRUST_DOMAIN}/compose/agent" "$AGENT_SVIDECAR_UID" agent
entry svidecar-mcp-server "spiffe://${TRUST_DOMAIN}/compose/mcp-server" "$MCP_SVIDECAR_UID" mcp
entry svidecar-llm-gateway "spiffe://${TRUST_DOMAIN}/compose/llm-gateway" "$LLM_SVIDECAR_UID" llm
echo "bootstrap: done"
