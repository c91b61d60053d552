/**
 * Load generator: open loop (a fixed arrival rate, latency measured from each
 * request's scheduled start, so a slow server cannot hide its queueing) or
 * closed loop (N connections as fast as they go, for saturation throughput).
 * Speaks mTLS when given a client certificate. Prints one JSON line.
 *
 * node load.ts '{"url":"https://127.0.0.1:8443/x","mode":"open","rate":1000,"seconds":10,"connections":64,"tls":{...}}'
 */
import { Pool } from 'undici'

interface Options {
  url: string
  mode: 'open' | 'closed'
  rate?: number
  seconds: number
  connections: number
  bodyBytes?: number
  tls?: { key: string; cert: string; ca: string }
}

const o = JSON.parse(process.argv[2] as string) as Options
const url = new URL(o.url)
const body = Buffer.alloc(o.bodyBytes ?? 1024, 0x61)
const pool = new Pool(url.origin, {
  connections: o.connections,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  ...(o.tls
    ? {
        connect: {
          key: o.tls.key,
          cert: o.tls.cert,
          ca: o.tls.ca,
          // The server is a SPIFFE peer: no DNS name to check, the chain to the bundle is what matters here.
          checkServerIdentity: () => undefined,
        },
      }
    : {}),
})

async function once(): Promise<boolean> {
  try {
    const res = await pool.request({
      path: url.pathname,
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    })
    await res.body.dump()
    return res.statusCode === 200
  } catch {
    return false
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

// Warm-up: connections, TLS sessions, JIT on both sides.
const warmEnd = performance.now() + 1500
while (performance.now() < warmEnd)
  await Promise.all(Array.from({ length: Math.min(o.connections, 16) }, once))

let ok = 0
let failed = 0
const latencies: number[] = []
const start = performance.now()
const end = start + o.seconds * 1000
if (o.mode === 'closed') {
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now()
        if (await once()) {
          ok++
          latencies.push(performance.now() - t0)
        } else failed++
      }
    }),
  )
} else {
  const rate = o.rate ?? 1000
  const interval = 1000 / rate
  const inflight: Promise<void>[] = []
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      if (now >= end) {
        resolve()
        return
      }
      const due = Math.floor((now - start) / interval)
      while (sent < due) {
        const scheduled = start + sent * interval
        sent++
        inflight.push(
          once().then((good) => {
            if (good) {
              ok++
              latencies.push(performance.now() - scheduled)
            } else failed++
          }),
        )
      }
      setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.all(inflight)
}
const elapsed = (performance.now() - start) / 1000
const sorted = Float64Array.from(latencies).sort()
process.stdout.write(
  `${JSON.stringify({
    ok,
    failed,
    rps: ok / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
  })}\n`,
)
await pool.close()
