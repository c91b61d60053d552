/**
 * The composition root: config → identity → TLS → listeners → admin. It is
 * the only module that knows every stage; stages know only their left-hand
 * neighbours. Metrics and logs attach here as subscribers of the events the
 * stages publish, never on the request path.
 */
import type { Writable } from 'node:stream'
import type { BudgetStore } from './budget/store.ts'
import type { SidecarConfig } from './config/index.ts'
import { Upstreams } from './forwarder/upstreams.ts'
import { Identity, type IdentityOptions } from './identity/identity.ts'
import { startAdmin } from './listener/admin.ts'
import { type InboundListener, startInbound } from './listener/inbound.ts'
import { type OutboundListener, startOutbound } from './listener/outbound.ts'
import type { HostPort, ListenerLimits } from './listener/server.ts'
import { type AuditLog, createAuditLog } from './observe/audit.ts'
import { publishIdentity, publishLifecycle } from './observe/events.ts'
import { createLogger, type Logger, subscribeLogs } from './observe/log.ts'
import { createMetrics } from './observe/metrics.ts'
import { startTracing, type Tracing } from './observe/tracing.ts'
import type { Stage } from './pipeline/stage.ts'
import { onPolicyReload } from './policy/events.ts'
import type { OpenedPolicy } from './policy/open.ts'
import { authorizerFromSpec } from './tls/authorizer.ts'
import { tlsParameters } from './tls/profiles.ts'

export interface SidecarOptions {
  /** Overrides for tests: a quicker Workload API reconnect. */
  identity?: Pick<IdentityOptions, 'backoff' | 'env'>
  logger?: Logger
  /** Where `audit.output: stdout` writes (tests capture it); process.stdout by default. */
  auditStdout?: Writable
}

export interface AddressBook {
  admin: HostPort
  inbound: Record<string, HostPort>
  outbound: Record<string, HostPort>
}

let instances = 0

type PolicyModule = typeof import('./policy/open.ts')
type RedisModule = typeof import('./budget/redis.ts')
type LlmModules = {
  providers: typeof import('./lens/llm/providers.ts')
  usage: typeof import('./stages/usage.ts')
  budget: typeof import('./stages/budget.ts')
}
type BudgetModules = {
  limits: typeof import('./budget/limits.ts')
  memory: typeof import('./budget/memory.ts')
}

/**
 * Modules only some configs need, loaded before the sidecar is built and only
 * when its config asks for them: a sidecar without a policy never loads the
 * policy engines and the CEL library, one without Redis budgets never loads
 * ioredis, one without `llm` never loads the LLM lens and its metering
 * (bench/RESULTS.md, "Idle RSS").
 */
interface OnDemand {
  policy?: PolicyModule
  redis?: RedisModule
  llm?: LlmModules
  budgets?: BudgetModules
}

async function onDemand(config: SidecarConfig): Promise<OnDemand> {
  // A sidecar that counts LLM tokens (an `llm` section, or budgets that MCP sampling counts against) loads the
  // tokenizer's tables (~75 MB, ~0.2 s) before it is ready, not on its first stream: loaded there, it held every
  // call the sidecar had in flight (up to 1.26 s on a busy host, bench/RESULTS.md), and an estimate needed
  // before it was in fell back to characters / 4.
  if (config.llm !== undefined || config.budgets !== undefined)
    await (await import('./lens/llm/usage/estimate.ts')).loadTokenizer()
  return {
    ...(config.policy === undefined ? {} : { policy: await import('./policy/open.ts') }),
    ...(config.budgets?.redis === undefined ? {} : { redis: await import('./budget/redis.ts') }),
    ...(config.llm === undefined
      ? {}
      : {
          llm: {
            providers: await import('./lens/llm/providers.ts'),
            usage: await import('./stages/usage.ts'),
            budget: await import('./stages/budget.ts'),
          },
        }),
    ...(config.budgets === undefined
      ? {}
      : {
          budgets: { limits: await import('./budget/limits.ts'), memory: await import('./budget/memory.ts') },
        }),
  }
}

export class Sidecar {
  readonly config: SidecarConfig
  /** Tells this sidecar's events from another's in the same process. */
  readonly #owner = `sidecar-${++instances}`
  readonly identity: Identity
  readonly logger: Logger
  readonly #upstreams: Upstreams
  readonly #inbound: InboundListener[] = []
  readonly #outbound: OutboundListener[] = []
  readonly #cleanups: Array<() => void> = []
  /** The policy engine in force when the config names one (the built-in one reloads its file). */
  readonly policy: OpenedPolicy | undefined
  /** Where LLM budgets are counted, when the config has `budgets`. */
  readonly budgetStore: BudgetStore | undefined
  #admin: Awaited<ReturnType<typeof startAdmin>> | undefined
  #audit: AuditLog | undefined
  #tracing: Tracing | undefined
  #draining = false
  /** Every configured data listener is bound: until then a client told "ready" could meet ECONNREFUSED. */
  #listening = false
  #closed: Promise<void> | undefined
  readonly #options: SidecarOptions
  readonly #modules: OnDemand

  private constructor(config: SidecarConfig, options: SidecarOptions, modules: OnDemand) {
    this.config = config
    this.#options = options
    this.#modules = modules
    this.logger = options.logger ?? createLogger({ level: config.log.level })
    // A policy that cannot load at start is an error, never a silent deny-all: the caller says why and exits.
    this.policy =
      config.policy === undefined ? undefined : (modules.policy as PolicyModule).openPolicy(config.policy)
    this.identity = Identity.start({
      ...(config.workloadApi.socket === undefined ? {} : { socket: config.workloadApi.socket }),
      ...(config.workloadApi.hint === undefined ? {} : { hint: config.workloadApi.hint }),
      ...(config.workloadApi.spiffeId === undefined ? {} : { spiffeId: config.workloadApi.spiffeId }),
      ...options.identity,
    })
    const budgets = config.budgets
    this.budgetStore =
      budgets === undefined
        ? undefined
        : budgets.redis === undefined
          ? new (modules.budgets as BudgetModules).memory.MemoryBudgetStore()
          : new (modules.redis as RedisModule).RedisBudgetStore({
              url: budgets.redis.url,
              keyPrefix: budgets.redis.keyPrefix,
              timeoutMs: budgets.redis.timeoutMs,
            })
    // Closed by destroy() too, so a start that fails later leaves no Redis connection retrying behind it.
    const store = this.budgetStore
    if (store !== undefined)
      this.#cleanups.push(() => {
        store.close().catch(() => {})
      })
    this.#upstreams = new Upstreams(this.identity, config.upstreams.values(), {
      connectTimeoutMs: config.limits.connectTimeout,
      idleTimeoutMs: config.limits.idleTimeout,
      requestTimeoutMs: config.limits.requestTimeout,
      minVersion: config.tls.minVersion,
      tlsProfile: config.tls.profile,
    })
  }

  /** Starts everything; listeners come up at once and refuse traffic (fail closed) until the first SVID. */
  static async start(config: SidecarConfig, options: SidecarOptions = {}): Promise<Sidecar> {
    const sidecar = new Sidecar(config, options, await onDemand(config))
    try {
      await sidecar.#start()
    } catch (err) {
      await sidecar.destroy()
      throw err
    }
    return sidecar
  }

  /** Ready = a valid SVID, every data listener bound, and not draining: what /readyz reports. */
  get ready(): boolean {
    return !this.#draining && this.#listening && this.identity.ready
  }

  #notReadyReason(): string {
    if (this.#draining) return 'draining'
    if (!this.#listening) return 'the listeners are not all bound yet'
    return this.identity.notReadyReason()
  }

  get addresses(): AddressBook {
    return {
      admin: this.#admin?.address ?? this.config.admin.address,
      inbound: Object.fromEntries(this.#inbound.map((l) => [l.listener.name, l.listener.address])),
      outbound: Object.fromEntries(this.#outbound.map((l) => [l.listener.name, l.listener.address])),
    }
  }

  /** SIGTERM: readiness off at once, stop accepting, finish in-flight work until the deadline. */
  close(deadlineMs = this.config.drainTimeout): Promise<void> {
    if (this.#closed) return this.#closed
    this.#draining = true
    publishLifecycle({ event: 'draining' })
    this.#closed = (async () => {
      await Promise.all([
        ...this.#inbound.map((l) => l.close(deadlineMs)),
        ...this.#outbound.map((l) => l.close(deadlineMs)),
      ])
      await this.#upstreams.close()
      this.identity.close()
      await this.#admin?.close()
      publishLifecycle({ event: 'stopped' })
      for (const cleanup of this.#cleanups) cleanup()
      await this.#closeAudit(deadlineMs)
      await this.#closeTracing()
    })()
    return this.#closed
  }

  async destroy(): Promise<void> {
    this.#draining = true
    for (const l of this.#inbound) await l.destroy()
    for (const l of this.#outbound) l.destroy()
    await this.#upstreams.destroy()
    this.identity.close()
    await this.#admin?.close()
    for (const cleanup of this.#cleanups) cleanup()
    await this.#closeAudit(0)
    await this.#closeTracing()
  }

  /** Exports the spans still buffered; a collector that is down costs at most the export timeout. */
  async #closeTracing(): Promise<void> {
    const tracing = this.#tracing
    this.#tracing = undefined
    await tracing?.shutdown().catch(() => {})
  }

  /** The LLM providers and their keys; a key's loads and refusals are logged by where it came from, never by value. */
  #llm(config: NonNullable<SidecarConfig['llm']>, modules: LlmModules) {
    const providers = new modules.providers.Providers(config.providers, (name) => ({
      onReport: (r) => {
        if (r.result === 'loaded')
          this.logger.info('provider key loaded', { provider: name, source: r.source })
        else
          this.logger.warn('provider key unusable: the last good key (if any) stays in force', {
            provider: name,
            source: r.source,
            ...(r.reason === undefined ? {} : { problem: r.reason }),
          })
      },
    }))
    this.#cleanups.push(() => providers.close())
    return {
      providers,
      bodyLimit: config.bodyLimit,
      maxDepth: config.maxDepth,
      unknownPaths: config.unknownPaths,
    }
  }

  /** Writes what the audit log still holds, for at most `deadlineMs` (a stuck stdout must not hold up exit). */
  async #closeAudit(deadlineMs: number): Promise<void> {
    const audit = this.#audit
    this.#audit = undefined
    if (audit === undefined) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      audit.close(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(deadlineMs, 1000))
        timer.unref()
      }),
    ])
    clearTimeout(timer)
  }

  async #start(): Promise<void> {
    const { config } = this
    this.#cleanups.push(subscribeLogs(this.logger))
    const opened = this.policy
    const policy = opened?.engine
    const store = opened?.store
    if (opened !== undefined) {
      this.logger.info('policy engine', { engine: opened.engine.name, source: opened.description })
      this.#cleanups.push(() => {
        opened.close().catch(() => {})
      })
    }
    if (store !== undefined) {
      this.#cleanups.push(
        onPolicyReload((e) => {
          if (e.source !== store.path) return
          if (e.result === 'success') this.logger.info('policy loaded', { file: e.source, rules: e.rules })
          else
            this.logger.warn('policy reload rejected: the last good policy stays in force', {
              file: e.source,
              code: e.code,
              problems: e.message,
              rules: e.rules,
            })
        }),
      )
    }
    // Only this sidecar's series, even when another one shares the process (svidecar demo).
    const scope = {
      owner: this.#owner,
      inbound: new Set(config.inbound.map((l) => l.name)),
      outbound: new Set([...config.outbound.map((l) => l.name), ...config.upstreams.keys()]),
      ...(store === undefined ? {} : { policy: store }),
    }
    const metrics = createMetrics(scope, {
      policyRuleLabel: config.metrics.policyRuleLabel,
      workloadApiReachable: () => this.identity.workloadApiReachable,
      ready: () => this.ready,
    })
    this.#cleanups.push(metrics.subscribe())
    this.#audit = createAuditLog(config.audit, {
      logger: this.logger,
      onLost: (lines) => metrics.auditLinesLost(lines),
      ...(this.#options.auditStdout === undefined ? {} : { stdout: this.#options.auditStdout }),
    })
    this.#cleanups.push(this.#audit.subscribe((e) => scope[e.direction].has(e.listener)))
    publishLifecycle({ event: 'starting' })
    for (const warning of config.warnings) this.logger.warn(warning)
    this.#cleanups.push(
      this.identity.onChange((snap) => {
        // Closing drops the identity on purpose; that is not an outage to report.
        if (snap === undefined && this.#draining) return
        publishIdentity(
          snap === undefined
            ? {
                status: 'not-ready',
                generation: -1,
                reason: this.identity.notReadyReason(),
                owner: this.#owner,
              }
            : {
                owner: this.#owner,
                status: 'ready',
                spiffeId: snap.svid.id.toString(),
                serial: snap.svid.serialNumber,
                notAfter: snap.svid.notAfter,
                generation: snap.generation,
              },
        )
      }),
    )
    const limits: ListenerLimits = {
      maxHeaderBytes: config.limits.maxHeaderBytes,
      maxHeaderCount: config.limits.maxHeaderCount,
      headersTimeoutMs: config.limits.headersTimeout,
      requestTimeoutMs: config.limits.requestTimeout,
      idleTimeoutMs: config.limits.idleTimeout,
      bodyIdleTimeoutMs: config.limits.bodyIdleTimeout,
      maxBodyBytes: config.limits.maxBodyBytes,
      maxConnections: config.limits.maxConnections,
    }
    // The OpenTelemetry SDK is loaded only here, and only when the config asks for spans.
    if (config.tracing !== undefined) this.#tracing = await startTracing(config.tracing)
    const tracing = this.#tracing
    this.#admin = await startAdmin({
      address: config.admin.address,
      registry: metrics.registry,
      isReady: () => (this.ready ? { ready: true } : { ready: false, reason: this.#notReadyReason() }),
    })
    for (const inbound of config.inbound) {
      this.#inbound.push(
        await startInbound(this.identity, {
          name: inbound.name,
          address: inbound.address,
          forwardTo: inbound.forwardTo,
          peerIdHeader: inbound.peerIdHeader,
          authorizer: authorizerFromSpec(inbound.authorize),
          tls: tlsParameters(inbound.tls.profile, config.tls.minVersion),
          handshakeTimeoutMs: inbound.tls.handshakeTimeout,
          limits,
          connectTimeoutMs: config.limits.connectTimeout,
          ...(policy === undefined ? {} : { policy }),
          ...(tracing === undefined ? {} : { tracing }),
          ...(inbound.mcp === undefined ? {} : { mcp: inbound.mcp }),
        }),
      )
    }
    const peerHeaders = config.inbound.map((i) => i.peerIdHeader)
    const llmModules = this.#modules.llm
    const llm =
      config.llm === undefined || llmModules === undefined ? undefined : this.#llm(config.llm, llmModules)
    const budgets = config.budgets
    const budgetStore = this.budgetStore
    const budgetModules = this.#modules.budgets
    const table =
      budgets === undefined || budgetModules === undefined
        ? undefined
        : new budgetModules.limits.BudgetTable(budgets.limits)
    // Model names written out in the config (no globs) become metric labels; any other model counts as `other`.
    const knownModels = [
      ...(table?.literalModels() ?? []),
      ...(config.llm?.providers ?? []).flatMap((p) => p.models.filter((m) => !/[*?[]/.test(m))),
    ]
    const metering = (m: LlmModules): Stage[] => [
      m.usage.usageStage({ knownModels }),
      ...(budgets === undefined || table === undefined || budgetStore === undefined
        ? []
        : [
            m.budget.budgetStage({
              table,
              store: budgetStore,
              config: {
                defaultMaxTokens: budgets.defaultMaxTokens,
                extendTokens: budgets.extendTokens,
                onUnavailable: budgets.redis?.onUnavailable ?? 'deny',
              },
              logger: this.logger,
            }),
          ]),
    ]
    for (const outbound of config.outbound) {
      this.#outbound.push(
        await startOutbound(this.identity, this.#upstreams, {
          name: outbound.name,
          address: outbound.address,
          routes: outbound.routes,
          limits,
          connectTimeoutMs: config.limits.connectTimeout,
          strip: peerHeaders,
          ...(policy === undefined ? {} : { policy }),
          ...(llm === undefined ? {} : { llm }),
          ...(tracing === undefined ? {} : { tracing }),
          ...(llm === undefined || llmModules === undefined ? {} : { metering: metering(llmModules) }),
          ...(outbound.mcp === undefined ? {} : { mcp: outbound.mcp }),
          ...(table === undefined || budgetStore === undefined
            ? {}
            : { sampling: { table, store: budgetStore } }),
        }),
      )
    }
    this.#listening = true
    // An SVID that came in while the listeners were binding makes the sidecar ready now, not at its next change.
    let wasReady = false
    const readiness = () => {
      if (this.ready !== wasReady) {
        wasReady = this.ready
        if (wasReady) publishLifecycle({ event: 'ready' })
      }
    }
    this.identity.onChange(readiness)
    readiness()
  }
}
