// The container image's runtime tree, assembled outside Docker the way the
// Dockerfile's stages do it (no Docker engine runs on these machines): compile
// to dist/, install production dependencies alone, then start the sidecar with
// the image's ENTRYPOINT and send traffic through it. What a user's image would
// be missing (a dev-only import, a file dist/ needs, a broken flag) fails here.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import { imageEntrypoint, imageNodeFlags, REPO_ROOT, stageSteps } from '../harness/image.ts'

const run = promisify(execFile)
const MCP = 'spiffe://example.org/mcp'
// Nothing from the test runner's environment (tap's loaders in NODE_OPTIONS) may leak into the image's process.
const cleanEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }

t.test('the checkout starts the sidecar with the same Node flags as the image', async (t) => {
  const shebang = readFileSync(join(REPO_ROOT, 'sidecar/bin/svidecar.js'), 'utf8').split('\n')[0] as string
  const binFlags = shebang.split(' ').filter((a) => a.startsWith('--') && !a.startsWith('--conditions'))
  t.same(binFlags, imageNodeFlags())
  t.ok(imageNodeFlags().length > 0, 'the image sets its V8 heap flags')
})

t.test('the image tree: production dependencies only, and it proxies over mTLS', async (t) => {
  // Stage "build": the same compiler run as the Dockerfile's `RUN node node_modules/typescript/bin/tsc -b`.
  await run(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: REPO_ROOT })

  // Stage "prod", replayed from the Dockerfile: its WORKDIR is a temp dir, COPY reads the checkout (the build
  // stage's /src is the checkout after the compile above), RUN runs in a shell there.
  // Outside the checkout: inside it, Node would resolve a package the image lacks from the checkout's node_modules.
  const root = mkdtempSync(join(tmpdir(), 'svidecar-image-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const app = join(root, 'app')
  mkdirSync(app)
  let workdir = app
  const inImage = (p: string) => (p.startsWith('/app') ? join(app, p.slice('/app'.length)) : join(workdir, p))
  for (const step of stageSteps('prod')) {
    if (step.kind === 'workdir') workdir = inImage(step.dir)
    else if (step.kind === 'run') {
      // --prefer-offline: the packages are in npm's cache after the checkout's own `npm ci`.
      await run('sh', ['-c', `${step.command} --prefer-offline`], {
        cwd: workdir,
        env: cleanEnv,
        maxBuffer: 16 * 1024 * 1024,
      })
    } else {
      // Both the build context and the build stage's /src are the checkout here.
      if (step.from !== undefined && step.from !== 'build')
        throw new Error(`cannot replay COPY --from=${step.from}`)
      for (const source of step.sources) {
        const from = join(REPO_ROOT, step.from === 'build' ? source.replace(/^\/src\//, '') : source)
        const to = step.dest.endsWith('/') ? join(inImage(step.dest), basename(source)) : inImage(step.dest)
        mkdirSync(dirname(to), { recursive: true })
        cpSync(from, to, { recursive: true })
      }
    }
  }
  t.ok(existsSync(join(app, 'sidecar/dist/cli/main.js')), 'the stage produced the entry point')

  for (const dev of ['tap', 'typescript', '@biomejs/biome', 'node', '@svidecar/certs', 'node-forge'])
    t.notOk(
      existsSync(join(app, 'node_modules', dev, 'package.json')),
      `no dev dependency ${dev} in the image`,
    )
  t.notOk(existsSync(join(app, 'certs')), 'no dev CA in the image')

  // The ENTRYPOINT, with the image's paths mapped into this tree.
  const [, ...entry] = imageEntrypoint()
  const argv = entry.map((a) => a.replace(/^\/app\//, `${app}/`))

  t.test('config check accepts every deployment example', async (t) => {
    for (const example of ['agent.yaml', 'mcp-server.yaml', 'llm-gateway.yaml']) {
      const { stdout } = await run(
        process.execPath,
        [...argv, 'config', 'check', join(REPO_ROOT, 'deploy/examples', example)],
        { env: cleanEnv },
      )
      t.match(stdout, /: ok \(/, example)
    }
  })

  t.test('demo needs the dev PKI, which the image does not carry: a clear error, not a stack', async (t) => {
    const err = await run(process.execPath, [...argv, 'demo'], { env: cleanEnv }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    )
    t.equal(err?.code, 1)
    t.match(err?.stderr ?? '', /svidecar demo needs the dev PKI/)
    t.notMatch(err?.stderr ?? '', /\n\s+at /, 'no stack trace')
  })

  t.test('run: outbound → mTLS → inbound → app, from the production tree', async (t) => {
    const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: MCP, hint: 'mcp' }] })
    t.teardown(() => api.close())
    const echo = createServer((req, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ peer: req.headers['x-spiffe-id'] ?? null, url: req.url }))
    })
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
    t.teardown(() => echo.close())
    const echoPort = (echo.address() as { port: number }).port

    // One sidecar, both directions: its outbound listener calls its own inbound listener over mTLS,
    // so the inbound port is picked before the config is written.
    const probe = createNetServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const inboundPort = (probe.address() as { port: number }).port
    await new Promise<void>((r) => probe.close(() => r()))
    const config = join(t.testdir(), 'svidecar.yaml')
    writeFileSync(
      config,
      `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
inbound:
  - name: public
    address: "127.0.0.1:${inboundPort}"
    forwardTo: "http://127.0.0.1:${echoPort}"
    authorize: { exact: "${MCP}" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: self }]
upstreams:
  self: { url: "https://127.0.0.1:${inboundPort}", spiffe: { exact: "${MCP}" } }
`,
    )

    const child: ChildProcess = spawn(process.execPath, [...argv, 'run', '--config', config], {
      env: cleanEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.teardown(() => child.kill('SIGKILL'))
    let log = ''
    child.stderr?.on('data', (d) => {
      log += d
    })
    const deadline = Date.now() + 15_000
    while (!log.includes('svidecar started')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`sidecar did not start:\n${log}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    const started = JSON.parse(log.split('\n').find((l) => l.includes('svidecar started')) as string)
    let ready = false
    while (!ready && Date.now() < deadline) {
      ready = (await fetch(`http://${started.admin}/readyz`)).status === 200
      if (!ready) await new Promise((r) => setTimeout(r, 50))
    }
    t.ok(ready, 'ready once the SVID arrived')

    const res = await fetch(`http://${started.outbound.egress}/hello?x=1`)
    t.equal(res.status, 200)
    t.same(await res.json(), { peer: MCP, url: '/hello?x=1' }, 'the app saw the verified peer ID')

    const metrics = await (await fetch(`http://${started.admin}/metrics`)).text()
    t.match(metrics, /svidecar_requests_total\{[^}]*direction="inbound"[^}]*\} 1/)

    child.kill('SIGTERM')
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
    t.equal(code, 0, 'SIGTERM drains and exits 0')
  })
})
