/**
 * Memory of a sidecar (issue 13), without the latency cells of bench/proxy.ts:
 * the bare-Node floor, idle RSS of an inbound and an outbound sidecar after a
 * warm-up, and 100 concurrent 1 MB uploads through one inbound hop (RSS peak,
 * and 10 s after). Method and figures in bench/RESULTS.md.
 *
 * `npm run bench:memory` (builds first; starts the sidecars as the image does).
 * BENCH_NODE_FLAGS (V8 flags for the sidecars, default the Dockerfile's),
 * BENCH_SIDECAR_ENV ("MALLOC_ARENA_MAX=2 ..." added to the sidecars' environment),
 * BENCH_REPS (upload bursts, 1), BENCH_AFTER_MS (10000), BENCH_SETTLE_MS (5000, idle before reading RSS),
 * BENCH_LOAD_SECONDS (0: no load cell; else fortio at 1,000 req/s over 16 connections through the inbound hop
 * for that long after 5 s of warm-up, reporting the sidecar's CPU per request and its largest RSS).
 */

import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import { ensureFortio } from '../test/harness/fortio-install.ts'
import { imageNodeFlags } from '../test/harness/image.ts'
import { floorRss, settledRss, uploads } from './memory-cells.ts'
import { inboundConfig, outboundConfig } from './mesh-configs.ts'
import { cpuMs, firstLine, pinned, rssMb, sidecarStarted, sleep } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const bin = join(here, '..', 'sidecar', 'dist', 'cli', 'main.js')
const NODE_FLAGS =
  process.env.BENCH_NODE_FLAGS === undefined
    ? imageNodeFlags()
    : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean)
const EXTRA_ENV = Object.fromEntries(
  (process.env.BENCH_SIDECAR_ENV ?? '')
    .split(' ')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
)
const REPS = Number(process.env.BENCH_REPS ?? 1)
const AFTER_MS = Number(process.env.BENCH_AFTER_MS ?? 10_000)
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 5000)
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 0)
const AGENT = 'spiffe://example.org/bench/agent'
const MCP = 'spiffe://example.org/bench/mcp'
const dir = mkdtempSync(join(tmpdir(), 'svidecar-mem-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

const ca = DevCa.create({ trustDomain: 'example.org' })
const api = await DevWorkloadApi.start({
  ca,
  workloads: [
    { spiffeId: AGENT, hint: 'agent' },
    { spiffeId: MCP, hint: 'mcp' },
  ],
})
const appChild = pinned(0, process.execPath, [join(here, 'app.ts'), '0'])
const appPort = Number(await firstLine(appChild, /^\d+$/))

async function sidecar(name: string, yaml: string) {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, yaml)
  const child = pinned(1, process.execPath, [...NODE_FLAGS, bin, 'run', '--config', file], {
    ...process.env,
    ...EXTRA_ENV,
  })
  child.stdout?.resume()
  const started = await sidecarStarted(child, name, 60_000)
  return { pid: child.pid as number, started }
}
const inbound = await sidecar('inbound', inboundConfig(api.endpoint, appPort, AGENT))
const inboundAddr = (inbound.started.inbound as Record<string, string>).mcp as string
const outbound = await sidecar('outbound', outboundConfig(api.endpoint, inboundAddr, MCP))
const outboundAddr = (outbound.started.outbound as Record<string, string>).egress as string
for (const sc of [inbound, outbound]) {
  for (let i = 0; ; i++) {
    if ((await fetch(`http://${sc.started.admin}/readyz`).catch(() => undefined))?.status === 200) break
    if (i === 200) throw new Error('sidecar did not become ready')
    await sleep(50)
  }
}
const started = { inbound: await settledRss(inbound.pid, 3000), outbound: rssMb(outbound.pid) }
process.stderr.write(
  `started: inbound ${started.inbound.toFixed(1)} MB, outbound ${started.outbound.toFixed(1)} MB\n`,
)
const agentSvid = api.currentSvid(AGENT)
if (!agentSvid) throw new Error('dev Workload API issued no SVID')

// Warm-up: 2,000 small POSTs through both sidecars (outbound → inbound → app), 8 at a time, and a metrics scrape.
const payload = 'x'.repeat(1024)
for (let i = 0; i < 250; i++)
  await Promise.all(
    Array.from({ length: 8 }, () =>
      fetch(`http://${outboundAddr}/warm`, { method: 'POST', body: payload }).then((r) => r.arrayBuffer()),
    ),
  )
for (const sc of [inbound, outbound]) await (await fetch(`http://${sc.started.admin}/metrics`)).text()

const floor = await floorRss(NODE_FLAGS)
const idle = { inbound: await settledRss(inbound.pid, SETTLE_MS), outbound: rssMb(outbound.pid) }
/** Where a sidecar's memory sits, from its own metrics and /proc (to tell V8's heap from malloc's arenas). */
async function memStats(sc: { pid: number; started: Record<string, unknown> }): Promise<string> {
  const text = await (await fetch(`http://${sc.started.admin}/metrics`)).text()
  const pick = (name: string) =>
    Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN) / 1048576
  const status = readFileSync(`/proc/${sc.pid}/status`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1]) / 1024
  return `pid ${sc.pid}: heap used ${pick('nodejs_heap_size_used_bytes').toFixed(1)} / total ${pick('nodejs_heap_size_total_bytes').toFixed(1)} MB, external ${pick('nodejs_external_memory_bytes').toFixed(1)} MB, RssAnon ${kb('RssAnon').toFixed(1)} MB, RssFile ${kb('RssFile').toFixed(1)} MB`
}
for (const sc of [inbound, outbound]) process.stderr.write(`  ${await memStats(sc)}\n`)
process.stderr.write(
  `floor ${floor.toFixed(1)} MB; idle inbound ${idle.inbound.toFixed(1)} MB, outbound ${idle.outbound.toFixed(1)} MB\n`,
)
const tls = { key: agentSvid.keyPem, cert: agentSvid.certChainPem, ca: api.bundlePem() }
let loadCell: { cpuUsPerRequest: number; requests: number; rssPeak: number; rssAfter: number } | undefined
if (LOAD_SECONDS > 0) {
  const fortioPath = await ensureFortio()
  writeFileSync(join(dir, 'agent.pem'), tls.cert)
  writeFileSync(join(dir, 'agent.key'), tls.key)
  const fortio = async (seconds: number) => {
    const out = join(dir, `fortio-${seconds}.json`)
    const child = pinned(0, fortioPath, [
      ...['load', '-qps', '1000', '-c', '16', '-uniform', '-t', `${seconds}s`, '-payload-size', '1024'],
      ...['-content-type', 'application/json', '-json', out, '-quiet'],
      ...['-cert', join(dir, 'agent.pem'), '-key', join(dir, 'agent.key'), '-k', `https://${inboundAddr}/x`],
    ])
    child.stdout?.resume()
    child.stderr?.resume()
    await once(child, 'exit')
    const r = JSON.parse(readFileSync(out, 'utf8')) as { RetCodes: Record<string, number> }
    return r.RetCodes['200'] ?? 0
  }
  await fortio(5)
  let rssPeak = 0
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMb(inbound.pid))
  }, 100)
  const before = cpuMs(inbound.pid)
  const requests = await fortio(LOAD_SECONDS)
  const cpu = cpuMs(inbound.pid) - before
  clearInterval(sampler)
  loadCell = { cpuUsPerRequest: (cpu * 1000) / requests, requests, rssPeak, rssAfter: rssMb(inbound.pid) }
  process.stderr.write(
    `load: ${requests} requests at 1,000 req/s, ${loadCell.cpuUsPerRequest.toFixed(1)} µs CPU per request, RSS peak ${rssPeak.toFixed(1)} MB\n`,
  )
}
const bursts = []
for (let rep = 0; rep < REPS; rep++) {
  const r = await uploads(inbound.pid, { url: `https://${inboundAddr}/upload`, tls }, { afterMs: AFTER_MS })
  bursts.push(r)
  process.stderr.write(`  after uploads: ${await memStats(inbound)}\n`)
  process.stderr.write(
    `uploads ${rep + 1}/${REPS}: idle ${r.idle.toFixed(1)} MB, peak ${r.peak.toFixed(1)} MB (+${(r.peak - r.idle).toFixed(1)}), ${r.afterMs / 1000} s after ${r.after.toFixed(1)} MB (${(((r.after - r.idle) / r.idle) * 100).toFixed(1)} %), ${r.seconds.toFixed(2)} s, statuses ${JSON.stringify(r.statuses)}\n`,
  )
}
process.stdout.write(
  `${JSON.stringify({ nodeFlags: NODE_FLAGS, env: EXTRA_ENV, floor, started, idle, load: loadCell, uploads: bursts }, null, 2)}\n`,
)
await api.close()
process.exit(0)
