/**
 * A real Prometheus server (the Debian `prometheus` package, installed by
 * debian.ts) for one test: config and TSDB in a temp dir, the web API on a
 * loopback port, stopped and removed by close(). Prometheus cannot report a
 * port it picked itself, so the harness picks a free one first.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const READY_TIMEOUT_MS = 60_000

export interface PrometheusOptions {
  /** `host:port` targets of one job named `svidecar`. */
  targets: string[]
  scrapeInterval?: string
  /** Absolute paths of rule files to load. */
  ruleFiles?: string[]
}

export interface QueryResult {
  metric: Record<string, string>
  value: [number, string]
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

export class Prometheus {
  readonly url: string
  readonly dir: string
  readonly #child: ChildProcess

  private constructor(url: string, dir: string, child: ChildProcess) {
    this.url = url
    this.dir = dir
    this.#child = child
  }

  static async start(options: PrometheusOptions): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'prometheus-'))
    const interval = options.scrapeInterval ?? '1s'
    const config = {
      global: { scrape_interval: interval, evaluation_interval: interval },
      rule_files: options.ruleFiles ?? [],
      scrape_configs: [{ job_name: 'svidecar', static_configs: [{ targets: options.targets }] }],
    }
    // JSON is YAML: no YAML writer needed for a file only Prometheus reads.
    writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2))
    const port = await freePort()
    const log = openSync(join(dir, 'prometheus.log'), 'a')
    const child = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { cwd: dir, detached: true, stdio: ['ignore', log, log] },
    )
    closeSync(log)
    const prometheus = new Prometheus(`http://127.0.0.1:${port}`, dir, child)
    try {
      await prometheus.#waitReady()
    } catch (err) {
      await prometheus.close()
      throw err
    }
    return prometheus
  }

  log(lines = 40): string {
    try {
      return readFileSync(join(this.dir, 'prometheus.log'), 'utf8').split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  /** An instant query through the HTTP API; throws on anything but a vector result. */
  async query(expr: string): Promise<QueryResult[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr })}`)
    const body = (await res.json()) as {
      status: string
      error?: string
      data?: { resultType: string; result: QueryResult[] }
    }
    if (body.status !== 'success' || body.data?.resultType !== 'vector')
      throw new Error(`query ${expr}: ${body.error ?? JSON.stringify(body)}`)
    return body.data.result
  }

  /** Polls a query until `done` accepts its result; returns that result. */
  async waitFor(
    expr: string,
    done: (result: QueryResult[]) => boolean,
    timeoutMs = 60_000,
  ): Promise<QueryResult[]> {
    const deadline = Date.now() + timeoutMs
    let last: QueryResult[] = []
    for (;;) {
      last = await this.query(expr)
      if (done(last)) return last
      if (Date.now() > deadline)
        throw new Error(`${expr} not as expected within ${timeoutMs} ms: ${JSON.stringify(last)}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  /** Rule groups as the server loaded them (`/api/v1/rules`). */
  async rules(): Promise<
    Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string }> }>
  > {
    const res = await fetch(`${this.url}/api/v1/rules`)
    const body = (await res.json()) as { data: { groups: Array<{ name: string; rules: [] }> } }
    return body.data.groups
  }

  async close(): Promise<void> {
    const child = this.#child
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      process.kill(-child.pid, 'SIGTERM')
      const timer = setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
        } catch {
          // Gone already.
        }
      }, 10_000)
      await exited
      clearTimeout(timer)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }

  async #waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null)
        throw new Error(
          `prometheus exited (${this.#child.exitCode ?? this.#child.signalCode}):\n${this.log()}`,
        )
      try {
        if ((await fetch(`${this.url}/-/ready`)).ok) return
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline)
        throw new Error(`prometheus not ready within ${READY_TIMEOUT_MS} ms:\n${this.log()}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
}
