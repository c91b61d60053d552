/**
 * The two sidecar configs the data-plane benchmarks share (proxy.ts, hop-cpu.ts, memory.ts): an inbound listener
 * in front of the app for the `mcp` workload, and the agent's outbound listener that reaches it over mTLS (`/two`
 * when an nginx upstream is the default route, everything otherwise).
 */

/** The inbound sidecar: `mcp` in front of the app on `appPort`, admitting only `agent`. */
export function inboundConfig(api: string, appPort: number, agent: string): string {
  return `workloadApi: { socket: "${api}", hint: mcp }
admin: { address: "127.0.0.1:0" }
inbound:
  - name: mcp
    address: "127.0.0.1:0"
    forwardTo: "http://127.0.0.1:${appPort}"
    authorize: { exact: "${agent}" }
`
}

/** The agent's outbound sidecar: to the inbound at `inboundAddr` (serving `mcp`); `/two` only when nginx is given. */
export function outboundConfig(api: string, inboundAddr: string, mcp: string, nginxPort?: number): string {
  const routes =
    nginxPort === undefined
      ? '    routes: [{ upstream: sidecar }]\n'
      : '    routes:\n      - { match: { pathPrefix: /two }, upstream: sidecar }\n      - { upstream: nginx }\n'
  const nginx =
    nginxPort === undefined
      ? ''
      : `  nginx: { url: "https://127.0.0.1:${nginxPort}", spiffe: { exact: "${mcp}" } }\n`
  return `workloadApi: { socket: "${api}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
${routes}upstreams:
  sidecar: { url: "https://${inboundAddr}", spiffe: { exact: "${mcp}" } }
${nginx}`
}
