// Case 2 at the process level: a Workload API that answers INVALID_ARGUMENT (SPIRE's "security header
// missing from request") will never serve this client, so retrying is pointless (SPIFFE_Workload_Endpoint
// §6, go-spiffe handleWatchError). The sidecar stops at once with a configuration error and a non-zero
// exit, instead of waiting out workloadApi.startupTimeout. The server is scripted (SPIRE cannot be made
// to refuse a client that sends the header).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import t from 'tap'
import { ScriptedServer } from '../../workload-api-client/test/helpers/scripted-server.ts'
import { socketDir } from '../../workload-api-client/test/helpers/tmp.ts'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'

const bin = fileURLToPath(new URL('../bin/svidecar.js', import.meta.url))

t.test(
  '[C2] INVALID_ARGUMENT from the Workload API: exit 1 at once with a configuration error',
  async (t) => {
    const server = await ScriptedServer.start(socketDir(t))
    t.teardown(() => server.close())
    server.script('FetchX509SVID', {
      messages: [],
      end: { code: 3 /* INVALID_ARGUMENT */, details: 'security header missing from request' },
    })
    const config = join(t.testdir(), 'sidecar.yaml')
    writeFileSync(
      config,
      `workloadApi: { socket: "${server.endpoint}", startupTimeout: 60s }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: x }]
upstreams:
  x: { url: "https://127.0.0.1:9" }
`,
    )
    const child = spawn(process.execPath, ['--conditions=svidecar-source', bin, 'run', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.teardown(() => child.kill('SIGKILL'))
    let log = ''
    child.stdout.on('data', (d) => {
      log += d
    })
    child.stderr.on('data', (d) => {
      log += d
    })
    let code: number | null | undefined
    once(child, 'exit').then(([c]) => {
      code = c as number | null
    })
    // Far below the 60 s startup timeout: the refusal itself ends the wait.
    await waitFor(() => code !== undefined, 'the process to exit', 20_000, 50)
    t.equal(code, 1)
    t.equal(server.callCount('FetchX509SVID'), 1, 'no retry')
    const line = log.split('\n').find((l) => l.includes('"level":"error"'))
    t.ok(line, 'says why')
    t.match(line, /INVALID_ARGUMENT|security header/)
  },
)
