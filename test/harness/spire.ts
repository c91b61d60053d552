/**
 * A real SPIRE server and agent for one test file: sqlite datastore,
 * join-token node attestation, the unix workload attestor, and nothing on
 * the network but the server's loopback port. Everything lives in a temp dir
 * that close() removes; both processes run in their own process groups so a
 * test that dies mid-way still takes them down (see the exit hook below).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomUUID, X509Certificate } from 'node:crypto'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DevCa } from '@svidecar/certs'
import { ensureSpire, type SpireBinaries } from './spire-install.ts'

export interface SpireEntry {
  spiffeId: string
  /** Default: the test process's uid, which is what the unix attestor sees for us. */
  selectors?: string[]
  /** Default: the agent's alias `spiffe://<td>/host`. */
  parentId?: string
  x509SvidTtlSeconds?: number
  jwtSvidTtlSeconds?: number
  hint?: string
  federatesWith?: string[]
  /** Default: a fresh UUID, so the test knows the ID without parsing CLI output. */
  entryId?: string
}

export interface StartSpireOptions {
  trustDomain?: string
  /** Created before the agent starts, so its first sync serves them. */
  entries?: SpireEntry[]
  caTtl?: string
  defaultX509SvidTtl?: string
  defaultJwtSvidTtl?: string
  /** Start only the server (for a second, federated trust domain). */
  agent?: boolean
  /**
   * `disk`: SPIRE's CA is an intermediate signed by an upstream root this
   * harness writes to disk, so the agent hands out leaf + intermediate and
   * the bundle holds the upstream root, as with any UpstreamAuthority.
   */
  upstreamAuthority?: 'disk'
  /**
   * Serve this trust domain's bundle endpoint on a free loopback port
   * (`federation { bundle_endpoint }`): `https_spiffe` presents the server's
   * SVID `spiffe://<td>/spire/server`; `https_web` a certificate from files
   * (`serving_cert_file`, no ACME, so it works offline).
   */
  bundleEndpoint?: { profile: 'https_spiffe' } | { profile: 'https_web'; certPem: string; keyPem: string }
  /** `federates_with` blocks (https_spiffe); the foreign roots still need `setFederatedBundle` to bootstrap. */
  federatesWith?: Array<{ trustDomain: string; bundleEndpointUrl: string; endpointSpiffeId: string }>
}

const READY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 10_000

// Children of every harness in this process, killed if the process exits without close().
const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL')
})

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // Already gone.
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      srv.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

function run(
  bin: string,
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

function tail(path: string, lines = 40): string {
  if (!existsSync(path)) return '(no log)'
  return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n')
}

export class Spire {
  readonly dir: string
  readonly trustDomain: string
  readonly serverSocketPath: string
  /** The agent's Workload API socket (absolute path). */
  readonly socketPath: string
  readonly serverPort: number
  /** The bundle endpoint's port, with `bundleEndpoint`. */
  bundleEndpointPort: number | undefined
  /** The upstream root (PEM) when started with `upstreamAuthority: 'disk'`. */
  upstreamRootPem: string | undefined
  readonly #bins: SpireBinaries
  readonly #entries = new Map<string, SpireEntry>()
  #server: ChildProcess | undefined
  #agent: ChildProcess | undefined
  #joinToken = ''
  #closed = false

  private constructor(bins: SpireBinaries, dir: string, trustDomain: string, port: number) {
    this.#bins = bins
    this.dir = dir
    this.trustDomain = trustDomain
    this.serverPort = port
    this.serverSocketPath = join(dir, 'server', 'api.sock')
    this.socketPath = join(dir, 'agent', 'public', 'api.sock')
  }

  static async start(options: StartSpireOptions = {}): Promise<Spire> {
    const bins = await ensureSpire()
    const dir = mkdtempSync(join(tmpdir(), 'spire-'))
    const spire = new Spire(bins, dir, options.trustDomain ?? 'example.org', await freePort())
    try {
      if (options.bundleEndpoint !== undefined) spire.bundleEndpointPort = await freePort()
      spire.#writeConfigs(options)
      await spire.#startServer()
      if (options.agent !== false) await spire.#generateJoinToken()
      for (const entry of options.entries ?? []) await spire.createEntry(entry)
      if (options.agent !== false) {
        await spire.startAgent()
        // The agent is healthy before its first sync has seen entries made
        // moments ago (the server reloads its entry cache every 5 s).
        const uid = process.getuid?.() ?? 0
        const ours = (options.entries ?? []).filter(
          (e) => e.selectors === undefined || e.selectors.includes(`unix:uid:${uid}`),
        )
        if (ours.length > 0) await spire.waitForSvids(ours.length)
      }
      return spire
    } catch (err) {
      await spire.close()
      throw err
    }
  }

  /** `unix://` address for clients and SPIFFE_ENDPOINT_SOCKET. */
  get endpoint(): string {
    return `unix://${this.socketPath}`
  }

  /** The agent's alias: every entry's default parent. */
  get hostId(): string {
    return `spiffe://${this.trustDomain}/host`
  }

  get agentRunning(): boolean {
    return this.#agent !== undefined && this.#agent.exitCode === null && this.#agent.signalCode === null
  }

  async createEntry(entry: SpireEntry): Promise<string> {
    const full = { ...entry, entryId: entry.entryId ?? randomUUID() }
    await this.#cli(['entry', 'create', '-entryID', full.entryId, ...this.#entryFlags(full)])
    this.#entries.set(full.entryId, full)
    return full.entryId
  }

  /** Replaces an entry's fields (the CLI's update needs them all, so unspecified ones keep their values). */
  async updateEntry(entryId: string, changes: Partial<Omit<SpireEntry, 'entryId'>>): Promise<void> {
    const current = this.#entries.get(entryId)
    if (current === undefined) throw new Error(`unknown entry ${entryId}`)
    const next = { ...current, ...changes }
    await this.#cli(['entry', 'update', '-entryID', entryId, ...this.#entryFlags(next)])
    this.#entries.set(entryId, next)
  }

  async deleteEntry(entryId: string): Promise<void> {
    await this.#cli(['entry', 'delete', '-entryID', entryId])
    this.#entries.delete(entryId)
  }

  async listEntries(): Promise<unknown[]> {
    const out = JSON.parse(await this.#cli(['entry', 'show', '-output', 'json'])) as { entries?: unknown[] }
    return out.entries ?? []
  }

  /** The server's current X.509 roots, PEM. */
  async bundlePem(): Promise<string> {
    return this.#cli(['bundle', 'show'])
  }

  /** Installs another trust domain's roots (federation without bundle endpoints). */
  async setFederatedBundle(trustDomain: string, pem: string): Promise<void> {
    const path = join(this.dir, `federated-${trustDomain}.pem`)
    writeFileSync(path, pem)
    await this.#cli(['bundle', 'set', '-id', `spiffe://${trustDomain}`, '-path', path])
  }

  /** The server's bundle as a SPIFFE bundle document (X.509 roots and JWT keys). */
  async bundleSpiffe(): Promise<string> {
    return this.#cli(['bundle', 'show', '-format', 'spiffe'])
  }

  /** Installs another trust domain's SPIFFE bundle document, JWT keys included. */
  async setFederatedSpiffeBundle(trustDomain: string, doc: string): Promise<void> {
    const path = join(this.dir, `federated-${trustDomain}.json`)
    writeFileSync(path, doc)
    await this.#cli(['bundle', 'set', '-format', 'spiffe', '-id', `spiffe://${trustDomain}`, '-path', path])
  }

  /** A JWT-SVID signed by this server's JWT key for any ID (`spire-server jwt mint`). */
  async mintJwtSvid(spiffeId: string, audience: string, ttl = '5m'): Promise<string> {
    return (
      await this.#cli(['jwt', 'mint', '-spiffeID', spiffeId, '-audience', audience, '-ttl', ttl])
    ).trim()
  }

  /** An X.509-SVID signed by this server's CA for any ID (`spire-server x509 mint`): leaf first. */
  async mintX509Svid(spiffeId: string, ttl = '5m'): Promise<X509Certificate[]> {
    const out = mkdtempSync(join(this.dir, 'mint-'))
    await this.#cli(['x509', 'mint', '-spiffeID', spiffeId, '-ttl', ttl, '-write', out])
    const pem = readFileSync(join(out, 'svid.pem'), 'utf8')
    return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
      (block) => new X509Certificate(block),
    )
  }

  async startAgent(): Promise<void> {
    if (this.agentRunning) return
    // The disk key manager keeps the agent's key and SVID, so a restart resumes
    // without attesting again (the join token is single-use).
    const attested = existsSync(join(this.dir, 'agent', 'data', 'agent_svid.der'))
    const args = ['run', '-config', join(this.dir, 'agent', 'agent.conf')]
    if (!attested) {
      if (this.#joinToken === '') await this.#generateJoinToken()
      args.push('-joinToken', this.#joinToken)
    }
    this.#agent = this.#spawn(this.#bins.agentBin, args, 'agent.log')
    await this.#waitHealthy(this.#agent, 'agent', this.#bins.agentBin, [
      'healthcheck',
      '-socketPath',
      this.socketPath,
    ])
  }

  /** Polls the agent (with SPIRE's own CLI) until it serves at least `count` X.509-SVIDs to this process. */
  async waitForSvids(count: number, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = ''
    for (;;) {
      const r = await run(this.#bins.agentBin, [
        'api',
        'fetch',
        'x509',
        '-socketPath',
        this.socketPath,
        '-output',
        'json',
      ])
      if (r.code === 0) {
        const svids = (JSON.parse(r.stdout) as { svids?: unknown[] }).svids ?? []
        if (svids.length >= count) return
        last = `${svids.length} of ${count} SVIDs`
      } else last = r.stderr || r.stdout
      if (Date.now() > deadline)
        throw new Error(`agent did not serve ${count} SVIDs within ${timeoutMs} ms: ${last}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  async stopAgent(): Promise<void> {
    const agent = this.#agent
    this.#agent = undefined
    if (agent) await stop(agent)
  }

  async restartAgent(): Promise<void> {
    await this.stopAgent()
    await this.startAgent()
  }

  /** Process IDs of the running server and agent, to prove close() leaves nothing behind. */
  pids(): number[] {
    return [this.#server?.pid, this.#agent?.pid].filter((p): p is number => p !== undefined)
  }

  /** Log tail of either process, for failure messages. */
  log(which: 'server' | 'agent', lines = 40): string {
    return tail(join(this.dir, `${which}.log`), lines)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.stopAgent()
    const server = this.#server
    this.#server = undefined
    if (server) await stop(server)
    rmSync(this.dir, { recursive: true, force: true })
  }

  #entryFlags(entry: SpireEntry): string[] {
    const flags = ['-parentID', entry.parentId ?? this.hostId, '-spiffeID', entry.spiffeId]
    const uid = process.getuid?.() ?? 0
    for (const selector of entry.selectors ?? [`unix:uid:${uid}`]) flags.push('-selector', selector)
    if (entry.x509SvidTtlSeconds !== undefined) flags.push('-x509SVIDTTL', String(entry.x509SvidTtlSeconds))
    if (entry.jwtSvidTtlSeconds !== undefined) flags.push('-jwtSVIDTTL', String(entry.jwtSvidTtlSeconds))
    if (entry.hint !== undefined) flags.push('-hint', entry.hint)
    for (const td of entry.federatesWith ?? [])
      flags.push('-federatesWith', td.startsWith('spiffe://') ? td : `spiffe://${td}`)
    return flags
  }

  // Single-use, and aliased to hostId so entries can name a parent before the agent exists.
  async #generateJoinToken(): Promise<void> {
    const out = await this.#cli(['token', 'generate', '-spiffeID', this.hostId, '-ttl', '600'])
    const match = /Token:\s*(\S+)/.exec(out)
    if (!match?.[1]) throw new Error(`no join token in: ${out}`)
    this.#joinToken = match[1]
  }

  /** Any `spire-server` subcommand against this server's socket (`federation refresh`, `bundle list`, …). */
  cli(args: string[]): Promise<string> {
    return this.#cli(args)
  }

  async #cli(args: string[]): Promise<string> {
    const [command, sub, ...rest] = args
    const full = [
      command as string,
      ...(sub === undefined ? [] : [sub]),
      '-socketPath',
      this.serverSocketPath,
      ...rest,
    ]
    const result = await run(this.#bins.serverBin, full)
    if (result.code !== 0) {
      throw new Error(
        `spire-server ${args.slice(0, 2).join(' ')} failed (${result.code}): ${result.stderr || result.stdout}`,
      )
    }
    return result.stdout
  }

  #writeConfigs(options: StartSpireOptions): void {
    const d = this.dir
    for (const sub of ['server/data', 'agent/data', 'agent/public'])
      mkdirSync(join(d, sub), { recursive: true })
    // Workloads under other uids (interop peers) must reach the agent's public socket, as on a real node.
    for (const sub of ['', 'agent', 'agent/public']) chmodSync(join(d, sub), 0o755)
    const upstream = options.upstreamAuthority === 'disk' ? this.#writeUpstreamRoot() : ''
    writeFileSync(
      join(d, 'server', 'server.conf'),
      `server {
  bind_address = "127.0.0.1"
  bind_port = "${this.serverPort}"
  socket_path = "${this.serverSocketPath}"
  trust_domain = "${this.trustDomain}"
  data_dir = "${join(d, 'server', 'data')}"
  log_level = "DEBUG"
  ca_ttl = "${options.caTtl ?? '1h'}"
  default_x509_svid_ttl = "${options.defaultX509SvidTtl ?? '10m'}"
  default_jwt_svid_ttl = "${options.defaultJwtSvidTtl ?? '5m'}"
${this.#bundleEndpointConfig(options)}}

plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(d, 'server', 'data', 'datastore.sqlite3')}"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "disk" {
    plugin_data {
      keys_path = "${join(d, 'server', 'data', 'keys.json')}"
    }
  }
${upstream}}
`,
    )
  }

  #bundleEndpointConfig(options: StartSpireOptions): string {
    const endpoint = options.bundleEndpoint
    const relationships = (options.federatesWith ?? [])
      .map(
        (f) => `    federates_with "${f.trustDomain}" {
      bundle_endpoint_url = "${f.bundleEndpointUrl}"
      bundle_endpoint_profile "https_spiffe" {
        endpoint_spiffe_id = "${f.endpointSpiffeId}"
      }
    }
`,
      )
      .join('')
    if (endpoint === undefined) return relationships === '' ? '' : `  federation {\n${relationships}  }\n`
    let profile = '      profile "https_spiffe" {}\n'
    if (endpoint.profile === 'https_web') {
      const cert = join(this.dir, 'server', 'web.crt')
      const key = join(this.dir, 'server', 'web.key')
      writeFileSync(cert, endpoint.certPem)
      writeFileSync(key, endpoint.keyPem, { mode: 0o600 })
      profile = `      profile "https_web" {
        serving_cert_file {
          cert_file_path = "${cert}"
          key_file_path = "${key}"
          file_sync_interval = "1m"
        }
      }
`
    }
    return `  federation {
    bundle_endpoint {
      address = "127.0.0.1"
      port = ${this.bundleEndpointPort}
      refresh_hint = "1m"
${profile}    }
${relationships}  }
`
  }

  /** A self-signed upstream root and its key on disk, and the UpstreamAuthority "disk" block naming them. */
  #writeUpstreamRoot(): string {
    const dir = join(this.dir, 'upstream')
    mkdirSync(dir, { recursive: true })
    const root = DevCa.create({ trustDomain: this.trustDomain, commonName: 'svidecar test upstream root' })
    const cert = join(dir, 'root.crt')
    const key = join(dir, 'root.key')
    writeFileSync(cert, root.bundlePem())
    writeFileSync(key, root.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
    this.upstreamRootPem = root.bundlePem()
    // A self-signed upstream CA needs no bundle_file_path: the certificate is its own bundle.
    return `  UpstreamAuthority "disk" {
    plugin_data {
      cert_file_path = "${cert}"
      key_file_path = "${key}"
    }
  }
`
  }

  #writeAgentConfig(bundlePath: string): void {
    const d = this.dir
    writeFileSync(
      join(d, 'agent', 'agent.conf'),
      `agent {
  data_dir = "${join(d, 'agent', 'data')}"
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "${this.serverPort}"
  socket_path = "${this.socketPath}"
  trust_domain = "${this.trustDomain}"
  trust_bundle_path = "${bundlePath}"
}

plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "disk" {
    plugin_data {
      directory = "${join(d, 'agent', 'data')}"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
    )
  }

  async #startServer(): Promise<void> {
    this.#server = this.#spawn(
      this.#bins.serverBin,
      ['run', '-config', join(this.dir, 'server', 'server.conf')],
      'server.log',
    )
    await this.#waitHealthy(this.#server, 'server', this.#bins.serverBin, [
      'healthcheck',
      '-socketPath',
      this.serverSocketPath,
    ])
    const bundlePath = join(this.dir, 'agent', 'bootstrap.pem')
    writeFileSync(bundlePath, await this.bundlePem())
    this.#writeAgentConfig(bundlePath)
  }

  #spawn(bin: string, args: string[], logName: string): ChildProcess {
    const fd = openSync(join(this.dir, logName), 'a')
    const child = spawn(bin, args, { cwd: this.dir, detached: true, stdio: ['ignore', fd, fd] })
    closeSync(fd)
    live.add(child)
    child.on('exit', () => live.delete(child))
    return child
  }

  async #waitHealthy(
    child: ChildProcess,
    which: 'server' | 'agent',
    bin: string,
    args: string[],
  ): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `spire-${which} exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${this.log(which)}`,
        )
      }
      if ((await run(bin, args, 5000)).code === 0) return
      if (Date.now() > deadline) {
        throw new Error(`spire-${which} not healthy within ${READY_TIMEOUT_MS} ms:\n${this.log(which)}`)
      }
      await new Promise((r) => setTimeout(r, 200))
    }
  }
}

/** SIGTERM to the group, SIGKILL after a deadline; resolves once the process is gone. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  killGroup(child, 'SIGTERM')
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

export function startSpire(options: StartSpireOptions = {}): Promise<Spire> {
  return Spire.start(options)
}
