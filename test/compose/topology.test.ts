// deploy/compose played as processes (no container engine runs here): the real SPIRE server and agent with the
// compose file's own configs and arguments, the bootstrap service's very script, the three svidecars with the
// very config and policy files the compose file mounts, and its apps. Where compose networking differs, the
// substitution is explicit and minimal: service host names and fixed ports become loopback ports, in-container
// paths become temp paths (svidecar's own SVIDECAR_* environment overrides carry its listener addresses and
// socket). Run as root (CI), each svidecar runs under the uid compose gives it, so the entries select them
// apart as in compose; otherwise all three run as this process's uid and their hints tell them apart.
import { execFile } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { connect } from 'node:tls'
import t from 'tap'
import { WorkloadApiClient } from 'workload-api-client'
import { parse } from 'yaml'
import { REPO_ROOT } from '../harness/image.ts'
import { requireSpire } from '../harness/spire-available.ts'
import { spireBinaries } from '../harness/spire-install.ts'
import { freePort, Processes, substitute, until } from './processes.ts'

const COMPOSE = join(REPO_ROOT, 'deploy/compose')
const AGENT_ID = 'spiffe://example.org/compose/agent'
const MCP_ID = 'spiffe://example.org/compose/mcp-server'
const LLM_ID = 'spiffe://example.org/compose/llm-gateway'

interface Service {
  command?: string[]
  volumes?: string[]
  user?: string
  environment?: Record<string, string>
}
const compose = parse(readFileSync(join(COMPOSE, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>
}

/** The host file compose mounts at `target` in `service`. */
function mounted(service: string, target: string): string {
  for (const volume of compose.services[service]?.volumes ?? []) {
    const [source, to] = volume.split(':') as [string, string]
    if (to === target) return join(COMPOSE, source)
  }
  throw new Error(`${service} mounts nothing at ${target}`)
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  user?: { uid: number; gid: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env, timeout: 90_000, ...user }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

if (requireSpire(t)) {
  t.test('spire: the compose topology as processes: traffic flows and is authorized', async (t) => {
    const bins = spireBinaries()
    const dir = mkdtempSync(join(tmpdir(), 'svc-compose-'))
    const procs = new Processes(dir)
    t.teardown(async () => {
      await procs.stopAll()
      rmSync(dir, { recursive: true, force: true })
    })
    // Nothing of the test runner's environment (tap's loaders) reaches the processes.
    const baseEnv = {
      PATH: `${dirname(bins.serverBin)}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      HOME: process.env.HOME ?? '/tmp',
    }
    const cli = join(REPO_ROOT, 'sidecar/bin/svidecar.js')
    const userOf = (service: string) => {
      const uid = Number(compose.services[service]?.user)
      return { uid, gid: uid }
    }
    // Compose's uids when this process may switch to them and they can read the checkout.
    const probe = ['-e', 'require("node:fs").accessSync(process.argv[1])', cli]
    const perUid =
      process.getuid?.() === 0 &&
      (await run(process.execPath, probe, baseEnv, userOf('agent-svidecar'))).code === 0
    t.comment(
      perUid ? 'each svidecar under its compose uid' : 'all svidecars under this uid, told apart by hint',
    )
    const own = String(process.getuid?.() ?? 0)
    const ports = {
      server: await freePort(),
      mcpApp: await freePort(),
      modelApp: await freePort(),
      egress: await freePort(),
      mcpInbound: await freePort(),
      llmInbound: await freePort(),
    }
    // In-container path → temp path, for the SPIRE configs and the agent's command line alike.
    const paths: Array<[string, string]> = [
      ['/tmp/spire-server/private/api.sock', join(dir, 'server', 'api.sock')],
      ['/var/lib/spire/server', join(dir, 'server', 'data')],
      ['/var/lib/spire/agent', join(dir, 'agent', 'data')],
      ['/run/spire/agent/public/api.sock', join(dir, 'agent', 'api.sock')],
      ['/run/spire/bootstrap', join(dir, 'bootstrap')],
    ]
    const pathOf = (p: string) => paths.reduce((s, [from, to]) => s.replace(from, to), p)
    for (const sub of ['server/data', 'agent/data', 'bootstrap', 'etc'])
      mkdirSync(join(dir, sub), { recursive: true })
    // The svidecars' uids must reach their configs and the agent's socket, as the compose volumes let them.
    mkdirSync(join(dir, 'agent'), { recursive: true })
    for (const sub of ['', 'agent', 'etc']) chmodSync(join(dir, sub), 0o755)

    // spire-server: its config as mounted, its arguments as the compose file gives them.
    const serverConfPath = mounted('spire-server', '/etc/spire/server/server.conf')
    const serverConf = join(dir, 'etc', 'server.conf')
    writeFileSync(
      serverConf,
      substitute(readFileSync(serverConfPath, 'utf8'), serverConfPath, [
        ['bind_address = "0.0.0.0"', 'bind_address = "127.0.0.1"'],
        ['bind_port = "8081"', `bind_port = "${ports.server}"`],
        ...paths.slice(0, 2),
      ]),
    )
    const serverArgs = (compose.services['spire-server']?.command ?? []).map((a) =>
      a === '/etc/spire/server/server.conf' ? serverConf : a,
    )
    procs.start('spire-server', bins.serverBin, ['run', ...serverArgs], baseEnv)
    const serverSocket = pathOf('/tmp/spire-server/private/api.sock')
    await until(
      async () => {
        procs.assertRunning('spire-server')
        return (await run(bins.serverBin, ['healthcheck', '-socketPath', serverSocket], baseEnv)).code === 0
      },
      () => procs.log('spire-server'),
    )

    // spire-bootstrap: the script the bootstrap image runs, with the server's socket and the shared volume here.
    const bootstrapEnv = compose.services['spire-bootstrap']?.environment ?? {}
    const bootstrap = await run('sh', [join(COMPOSE, 'bootstrap', 'bootstrap.sh')], {
      ...baseEnv,
      SPIRE_SERVER_SOCKET: serverSocket,
      BOOTSTRAP_DIR: pathOf('/run/spire/bootstrap'),
      ...(perUid ? bootstrapEnv : { AGENT_SVIDECAR_UID: own, MCP_SVIDECAR_UID: own, LLM_SVIDECAR_UID: own }),
    })
    t.equal(bootstrap.code, 0, 'the bootstrap script exits 0', {
      output: bootstrap.stdout + bootstrap.stderr,
    })
    t.match(bootstrap.stdout, /bootstrap: done/)
    t.equal(
      bootstrapEnv.AGENT_SVIDECAR_UID,
      compose.services['agent-svidecar']?.user,
      "compose gives the bootstrap service the svidecars' uids",
    )
    const again = await run('sh', [join(COMPOSE, 'bootstrap', 'bootstrap.sh')], {
      ...baseEnv,
      SPIRE_SERVER_SOCKET: serverSocket,
      BOOTSTRAP_DIR: join(dir, 'bootstrap-again'),
    })
    t.equal(again.code, 0, 'a second run (compose up again) succeeds')
    t.equal((again.stdout.match(/exists/g) ?? []).length, 3, 'and keeps the three entries')

    // spire-agent: config and command line from the compose file.
    const agentConfPath = mounted('spire-agent', '/etc/spire/agent/agent.conf')
    const agentConf = join(dir, 'etc', 'agent.conf')
    writeFileSync(
      agentConf,
      substitute(readFileSync(agentConfPath, 'utf8'), agentConfPath, [
        ['server_address = "spire-server"', 'server_address = "127.0.0.1"'],
        ['server_port = "8081"', `server_port = "${ports.server}"`],
        ...paths.slice(2),
      ]),
    )
    const agentArgs = (compose.services['spire-agent']?.command ?? []).map((a) =>
      a === '/etc/spire/agent/agent.conf' ? agentConf : pathOf(a),
    )
    t.ok(agentArgs.includes('-joinTokenFile'), 'the agent reads the join token the bootstrap wrote')
    procs.start('spire-agent', bins.agentBin, ['run', ...agentArgs], baseEnv)
    const agentSocket = pathOf('/run/spire/agent/public/api.sock')
    await until(
      async () => {
        procs.assertRunning('spire-agent')
        return (await run(bins.agentBin, ['healthcheck', '-socketPath', agentSocket], baseEnv)).code === 0
      },
      () => procs.log('spire-agent'),
    )

    // The apps, from the files compose mounts; their fixed ports (8080, 8000) become free ones.
    procs.start('mcp-server', process.execPath, [mounted('mcp-server', '/apps/mcp-server.mjs')], {
      ...baseEnv,
      PORT: String(ports.mcpApp),
    })
    procs.start('model-server', process.execPath, [mounted('model-server', '/apps/model-server.mjs')], {
      ...baseEnv,
      PORT: String(ports.modelApp),
    })

    // The svidecars: `svidecar run --config` (the image's CMD) on the mounted files.
    const admin: Record<string, string> = {}
    const sidecars = [
      {
        service: 'agent-svidecar',
        listener: 'EGRESS',
        port: ports.egress,
        replace: [
          ['https://mcp-svidecar:15443', `https://127.0.0.1:${ports.mcpInbound}`],
          ['https://llm-svidecar:15443', `https://127.0.0.1:${ports.llmInbound}`],
        ],
      },
      {
        service: 'mcp-svidecar',
        listener: 'MCP',
        port: ports.mcpInbound,
        replace: [
          ['http://127.0.0.1:8080', `http://127.0.0.1:${ports.mcpApp}`],
          ['/etc/svidecar/policy.yaml', mounted('mcp-svidecar', '/etc/svidecar/policy.yaml')],
        ],
      },
      {
        service: 'llm-svidecar',
        listener: 'GATEWAY',
        port: ports.llmInbound,
        replace: [
          ['http://127.0.0.1:8000', `http://127.0.0.1:${ports.modelApp}`],
          ['/etc/svidecar/policy.yaml', mounted('llm-svidecar', '/etc/svidecar/policy.yaml')],
        ],
      },
    ] as const
    for (const s of sidecars) {
      const source = mounted(s.service, '/etc/svidecar/svidecar.yaml')
      const config = join(dir, 'etc', `${s.service}.yaml`)
      writeFileSync(config, substitute(readFileSync(source, 'utf8'), source, s.replace))
      const adminAddress = `127.0.0.1:${await freePort()}`
      admin[s.service] = `http://${adminAddress}`
      procs.start(
        s.service,
        process.execPath,
        ['--conditions=svidecar-source', cli, 'run', '--config', config],
        {
          ...baseEnv,
          SVIDECAR_WORKLOAD_API_SOCKET: `unix://${agentSocket}`,
          SVIDECAR_ADMIN_ADDRESS: adminAddress,
          [`SVIDECAR_LISTENER_${s.listener}_ADDRESS`]: `127.0.0.1:${s.port}`,
        },
        perUid ? userOf(s.service) : undefined,
      )
    }
    for (const s of sidecars) {
      await until(
        async () => {
          procs.assertRunning(s.service)
          return (await fetch(`${admin[s.service]}/readyz`)).ok
        },
        () => procs.log(s.service),
      )
    }
    t.pass('the three svidecars are ready on SVIDs from the SPIRE agent')

    // demo-agent: one round through its svidecar.
    const round = await run(process.execPath, [mounted('demo-agent', '/apps/demo-agent.mjs')], {
      ...baseEnv,
      ONCE: '1',
      OUTBOUND: `http://127.0.0.1:${ports.egress}`,
    })
    const calls = round.stdout
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { call: string; ok: boolean; status?: number; said?: string; code?: string },
      )
    t.equal(round.code, 0, 'the demo agent: every call as expected', { output: round.stdout + round.stderr })
    const call = (name: string) => calls.find((c) => c.call === name)
    t.equal(
      call('mcp tools/call whoami')?.said,
      `you are ${AGENT_ID}`,
      'the MCP server saw the verified caller',
    )
    t.equal(call('llm chat completion')?.said, 'You said: hello through the mesh', 'the model answered')
    t.same(
      { status: call('denied admin route')?.status, code: call('denied admin route')?.code },
      { status: 403, code: 'SVD_POLICY_DENIED' },
      "the MCP server's policy refused the admin route",
    )

    // A workload of the trust domain that the MCP server's sidecar does not admit: the LLM gateway's identity,
    // minted by the SPIRE server (the agent hands it only to the LLM gateway's uid).
    const minted = join(dir, 'minted')
    mkdirSync(minted)
    const mint = await run(
      bins.serverBin,
      ['x509', 'mint', '-socketPath', serverSocket, '-spiffeID', LLM_ID, '-ttl', '5m', '-write', minted],
      baseEnv,
    )
    t.equal(mint.code, 0, 'spire-server x509 mint', { output: mint.stdout + mint.stderr })
    const pem = {
      certChain: readFileSync(join(minted, 'svid.pem'), 'utf8'),
      key: readFileSync(join(minted, 'key.pem'), 'utf8'),
    }
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port: ports.mcpInbound,
        cert: pem.certChain,
        key: pem.key,
        rejectUnauthorized: false,
      })
      socket.on('secureConnect', () =>
        socket.write(`POST /mcp HTTP/1.1\r\nhost: mcp\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`),
      )
      let response = ''
      socket.on('data', (d) => {
        response += d.toString()
      })
      socket.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`))
      socket.on('close', () => resolve(response === '' ? 'closed' : `response ${response.split('\r\n')[0]}`))
    })
    t.notMatch(outcome, /^response/, `no HTTP response for a caller the listener does not admit (${outcome})`)
    const mcpMetrics = await (await fetch(`${admin['mcp-svidecar']}/metrics`)).text()
    t.match(
      mcpMetrics,
      /^svidecar_tls_rejections_total\{listener="mcp",direction="inbound",code="SVD_PEER_REJECTED"/m,
    )
    t.match(
      mcpMetrics,
      /^svidecar_policy_decisions_total\{action="http.route",decision="deny",engine="builtin",mode="enforce"\} 1$/m,
    )
    const agentMetrics = await (await fetch(`${admin['agent-svidecar']}/metrics`)).text()
    t.match(
      agentMetrics,
      /^svidecar_requests_total\{listener="egress",direction="outbound",status_class="2xx",code=""\} [3-9]/m,
    )
    t.match(agentMetrics, /^svidecar_ready 1$/m)
    // What the agent hands this process: everything when all share its uid, nothing when entries select by uid.
    const client = new WorkloadApiClient({ address: `unix://${agentSocket}` })
    t.teardown(() => client.close())
    const issued = await client.fetchX509Context().then(
      (c) => c.svids.map((s) => s.id.toString()).sort(),
      (err: { code?: string }) => err.code,
    )
    t.same(
      issued,
      perUid ? 'SPIFFE_WLAPI_NO_IDENTITY' : [AGENT_ID, LLM_ID, MCP_ID],
      perUid ? 'a process under no registered uid gets no identity' : 'one uid: all three entries',
    )
  })
}
