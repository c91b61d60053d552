// Tasks (2025-11-25, SEP-1686; the tasks extension's tasks/get, tasks/cancel in 2026-07-28): a task is bound
// to the SPIFFE ID whose request created it, on the MCP server's sidecar. Its creator polls it, reads its result
// and lists it; another workload asking for it gets "Task not found" from the sidecar and nothing reaches the
// server. With the official SDK (1.x experimental tasks) client and server, through both sidecars.

import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { InMemoryTaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { CallToolResultSchema, CreateTaskResultSchema } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { on, type RequestEvent } from '../src/observe/events.ts'
import { AGENT, AGENT2, startMcpMesh } from './helpers/mcp-mesh.ts'
import { sessionMcpServer } from './helpers/mcp-servers.ts'

const POLICY = `version: 1
rules:
  - id: agents
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: mcp.tool, name: "*" }]
`

/** An SDK server whose `slow` tool runs as a task; `methods` records every request that reached it. */
async function taskServer(t: Test): Promise<{ url: string; methods: string[] }> {
  // One store for every session: only the sidecar keeps one workload from another's tasks.
  const taskStore = new InMemoryTaskStore()
  t.teardown(() => taskStore.cleanup())
  const build = () => {
    const server = new McpServer(
      { name: 'tasks', version: '1.0.0' },
      {
        capabilities: { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } },
        taskStore,
      },
    )
    server.experimental.tasks.registerToolTask(
      'slow',
      { description: 'runs as a task', execution: { taskSupport: 'required' } },
      {
        createTask: async (extra) => {
          const task = await extra.taskStore.createTask({ ttl: 60_000 })
          await extra.taskStore.storeTaskResult(task.taskId, 'completed', {
            content: [{ type: 'text', text: 'slow work done' }],
          })
          return { task }
        },
        getTask: async (extra) => extra.taskStore.getTask(extra.taskId),
        getTaskResult: async (extra) =>
          (await extra.taskStore.getTaskResult(extra.taskId)) as {
            content: [{ type: 'text'; text: string }]
          },
      },
    )
    return server
  }
  const { url, methods } = await sessionMcpServer(t, build)
  return { url, methods }
}

async function connect(t: Test, url: string): Promise<Client> {
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  t.teardown(() => client.close())
  return client
}

async function refused(call: Promise<unknown>): Promise<{ code?: unknown; message?: unknown }> {
  try {
    await call
  } catch (err) {
    return err as { code?: unknown; message?: unknown }
  }
  throw new Error('the call was not refused')
}

t.test('a task belongs to the workload that created it; another one cannot see or touch it', async (t) => {
  const upstream = await taskServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const ends: RequestEvent[] = []
  t.teardown(on('request', (e) => ends.push(e)))

  const agent = await connect(t, mesh.agentUrl)
  const created = await agent.request(
    { method: 'tools/call', params: { name: 'slow', arguments: {}, task: { ttl: 60_000 } } },
    CreateTaskResultSchema,
  )
  const taskId = created.task.taskId
  t.ok(taskId.length > 0, 'the task was created through both sidecars')
  t.equal((await agent.experimental.tasks.getTask(taskId)).taskId, taskId, 'its creator polls it')
  t.match(
    await agent.experimental.tasks.getTaskResult(taskId, CallToolResultSchema),
    { content: [{ type: 'text', text: 'slow work done' }] },
    'and reads its result',
  )
  t.same(
    (await agent.experimental.tasks.listTasks()).tasks.map((x) => x.taskId),
    [taskId],
    'and lists it',
  )

  const other = await connect(t, mesh.agent2Url)
  const before = upstream.methods.length
  for (const [what, call] of [
    ['tasks/get', () => other.experimental.tasks.getTask(taskId)],
    ['tasks/result', () => other.experimental.tasks.getTaskResult(taskId, CallToolResultSchema)],
    ['tasks/cancel', () => other.experimental.tasks.cancelTask(taskId)],
  ] as const) {
    const err = await refused(call())
    t.equal(err.code, -32602, `${what}: invalid params, as for a task that does not exist`)
    t.match(err.message, /Task not found/)
  }
  t.equal(upstream.methods.length, before, 'none of them reached the server')
  t.match(
    ends.filter((e) => e.code === 'SVD_MCP_DENIED').map((e) => e.reason),
    ['TASK_FOREIGN', 'TASK_FOREIGN', 'TASK_FOREIGN'],
    'the refusals say why',
  )
  const unknown = await refused(other.experimental.tasks.getTask('no-such-task'))
  t.equal(unknown.code, -32602, 'an unknown task is answered the same way')
  t.same((await other.experimental.tasks.listTasks()).tasks, [], "another workload's list leaves it out")
  t.equal(upstream.methods.at(-1), 'tasks/list', 'the list itself was forwarded and filtered on its way back')

  // The task has completed, so the server itself refuses to cancel it: what matters is that it was asked.
  await agent.experimental.tasks.cancelTask(taskId).catch(() => undefined)
  t.equal(upstream.methods.at(-1), 'tasks/cancel', "its creator's cancel reaches the server")
})
