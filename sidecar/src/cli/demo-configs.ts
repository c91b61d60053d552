/**
 * The two configuration files `svidecar demo` runs its sidecars with, as
 * text: what a user would write, so the config JSON Schema test can check
 * them like the files in deploy/examples.
 */

/**
 * The MCP server's sidecar: one inbound listener that lets the agent in, under the demo policy, with the MCP
 * lens on the app's `/mcp` path.
 */
export function mcpSidecarConfig(o: {
  socket: string
  appUrl: string
  agentId: string
  policyFile: string
}): string {
  return `workloadApi: { socket: "${o.socket}", hint: mcp }
admin: { address: "127.0.0.1:0" }
drainTimeout: 2s
inbound:
  - name: mcp
    address: "127.0.0.1:0"
    forwardTo: "${o.appUrl}"
    authorize: { exact: "${o.agentId}" }
    mcp: { paths: [/mcp] }
policy: { file: "${o.policyFile}" }
`
}

/**
 * The agent's sidecar: one outbound listener to the MCP server's sidecar over mTLS, and one LLM gateway
 * listener in front of the local model server, whose key only this sidecar reads, with a small daily token
 * budget for the agent (in memory) that the demo runs out of.
 */
export function agentSidecarConfig(o: {
  socket: string
  mcpPort: number
  mcpId: string
  modelUrl: string
  keyFile: string
  policyFile: string
  agentId: string
  tokensPerDay: number
}): string {
  return `workloadApi: { socket: "${o.socket}", hint: agent }
admin: { address: "127.0.0.1:0" }
drainTimeout: 2s
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: mcp }]
  - name: llm
    address: "127.0.0.1:0"
    routes: [{ lens: llm }]
upstreams:
  mcp:
    url: "https://127.0.0.1:${o.mcpPort}"
    spiffe: { exact: "${o.mcpId}" }
  model:
    url: "${o.modelUrl}"
    allowPlaintext: true
llm:
  providers:
    local:
      kind: openai-compatible
      upstream: model
      credential: { file: "${o.keyFile}" }
budgets:
  defaultMaxTokens: 16
  extendTokens: 16
  limits:
    - name: agent-daily
      subjects: ["${o.agentId}"]
      tokensPerDay: ${o.tokensPerDay}
policy: { file: "${o.policyFile}" }
`
}
