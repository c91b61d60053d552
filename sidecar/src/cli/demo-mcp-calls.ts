/**
 * The demo agent's MCP session, through its sidecar and over mTLS to the
 * MCP server's sidecar, whose MCP lens decides every message: the tool list
 * it is shown, an allowed call, and a denied call in each denial style. The
 * agent speaks plain JSON-RPC over Streamable HTTP, so each line shows
 * exactly what a client receives.
 */
import { type DemoAudit, decisionOn } from './demo-audit.ts'

type Log = (line: string) => void

const VERSION = '2025-11-25'

interface RpcAnswer {
  status: number
  wwwAuthenticate: string | null
  result?: { tools?: { name: string }[]; content?: { text?: string }[]; isError?: boolean }
  error?: { code: number; message: string }
}

export async function mcpCalls(url: string, audit: DemoAudit, log: Log): Promise<void> {
  let id = 0
  const rpc = async (method: string, params: unknown, notification = false): Promise<RpcAnswer> => {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(method === 'initialize' ? {} : { 'mcp-protocol-version': VERSION }),
      },
      body: JSON.stringify({ jsonrpc: '2.0', ...(notification ? {} : { id: ++id }), method, params }),
    })
    const text = await res.text()
    const doc = text === '' ? {} : (JSON.parse(text) as Omit<RpcAnswer, 'status' | 'wwwAuthenticate'>)
    return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate'), ...doc }
  }
  const call = (name: string, args: Record<string, unknown>) => rpc('tools/call', { name, arguments: args })
  try {
    log("MCP: the agent's session with the MCP server; the server's sidecar decides every message")
    await rpc('initialize', {
      protocolVersion: VERSION,
      capabilities: {},
      clientInfo: { name: 'svidecar-demo-agent', version: '1.0.0' },
    })
    await rpc('notifications/initialized', {}, true)
    const list = await rpc('tools/list', {})
    log(
      `MCP tools/list as the agent sees it: ${(list.result?.tools ?? []).map((t) => t.name).join(', ')} (the server has read_secrets too: hidden)`,
    )
    // The list is decided tool by tool: the denied ones are audited (read_secrets last, with no rule).
    await audit.flush(log, decisionOn('read_secrets'))

    const search = await call('search_docs', { query: 'budgets' })
    log(`MCP search_docs (allowed): "${search.result?.content?.[0]?.text}"`)
    await audit.flush(log, decisionOn('search_docs'))

    const hidden = await call('read_secrets', {})
    log(
      `MCP read_secrets (denied, hide): JSON-RPC error ${hidden.error?.code} "${hidden.error?.message}", as the server answers a tool it does not have`,
    )
    await audit.flush(log, decisionOn('read_secrets'))

    const explained = await call('delete_repo', { repo: 'svidecar' })
    log(
      `MCP delete_repo (denied, explain): a tool result with isError ${explained.result?.isError}: "${explained.result?.content?.[0]?.text}", so the model can adapt`,
    )
    await audit.flush(log, decisionOn('delete_repo'))

    const forbidden = await call('deploy', { service: 'web' })
    log(
      `MCP deploy (denied, forbid): HTTP ${forbidden.status}, WWW-Authenticate: ${forbidden.wwwAuthenticate} (a client can ask for more rights)`,
    )
    await audit.flush(log, decisionOn('deploy'))
  } catch (err) {
    log(`MCP calls failed: ${(err as Error).message}`)
  }
}
