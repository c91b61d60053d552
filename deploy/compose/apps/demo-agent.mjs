// The demo agent: every few seconds it talks to the MCP server and the model server through its own svidecar
// (plaintext to $OUTBOUND, default http://127.0.0.1:15001), and once a round asks for a route the MCP
// server's policy denies. One line per call. ONCE=1 runs a single round and exits 0 only when every call
// came out as expected (the compose test runs it that way).
const outbound = process.env.OUTBOUND ?? 'http://127.0.0.1:15001'
const intervalMs = Number(process.env.INTERVAL_SECONDS ?? 5) * 1000
const once = process.env.ONCE === '1'

async function mcp(body, session) {
  const res = await fetch(`${outbound}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
      ...(session === undefined ? {} : { 'mcp-session-id': session }),
    },
    body: JSON.stringify(body),
  })
  const text = await res.text()
  return {
    status: res.status,
    session: res.headers.get('mcp-session-id') ?? session,
    body: text ? JSON.parse(text) : undefined,
  }
}

async function round() {
  const results = []
  const check = (name, ok, detail) => {
    results.push(ok)
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), call: name, ok, ...detail })}\n`)
  }
  try {
    const init = await mcp({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'demo-agent', version: '0.1.0' },
      },
    })
    check('mcp initialize', init.status === 200 && init.body?.result?.protocolVersion !== undefined, {
      status: init.status,
    })
    await mcp({ jsonrpc: '2.0', method: 'notifications/initialized' }, init.session)
    const call = await mcp(
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      init.session,
    )
    const said = call.body?.result?.content?.[0]?.text
    check('mcp tools/call whoami', call.status === 200 && typeof said === 'string', {
      status: call.status,
      said,
    })

    const chat = await fetch(`${outbound}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'demo-small',
        messages: [{ role: 'user', content: 'hello through the mesh' }],
      }),
    })
    const completion = await chat.json()
    check(
      'llm chat completion',
      chat.status === 200 && completion.choices?.[0]?.message?.content !== undefined,
      {
        status: chat.status,
        said: completion.choices?.[0]?.message?.content,
      },
    )

    const denied = await fetch(`${outbound}/admin/reset`, { method: 'POST' })
    const refusal = await denied.json()
    check('denied admin route', denied.status === 403, { status: denied.status, code: refusal.error?.code })
  } catch (err) {
    check('round', false, { error: err instanceof Error ? err.message : String(err) })
  }
  return results.every(Boolean)
}

if (once) process.exit((await round()) ? 0 : 1)
for (;;) {
  await round()
  await new Promise((resolve) => setTimeout(resolve, intervalMs))
}
