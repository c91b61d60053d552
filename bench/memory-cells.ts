/**
 * Memory cells the proxy benchmark and the memory benchmark share (issue 13):
 * the RSS of a bare Node process (the floor), a process's RSS once idle, and
 * 100 concurrent 1 MB uploads through one hop with the RSS peak and 10 s later.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { Agent, request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { firstLine, rssMb, sleep } from './procs.ts'

/** RSS of `node -e 'setInterval(()=>{},1000)'` with the given flags, after `settleMs`. */
export async function floorRss(nodeFlags: string[], settleMs = 3000): Promise<number> {
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeFlags, '-e', 'process.stdout.write("up\\n");setInterval(()=>{},1000)'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  )
  await firstLine(child, /^up$/)
  await sleep(settleMs)
  const rss = rssMb(child.pid as number)
  child.kill('SIGKILL')
  return rss
}

/** RSS of `pid` once it has been left alone for `settleMs` (what it holds between bursts). */
export async function settledRss(pid: number, settleMs = 3000): Promise<number> {
  await sleep(settleMs)
  return rssMb(pid)
}

export interface UploadTarget {
  url: string
  /** mTLS to the hop: the client's key and chain, and the bundle that verifies the hop. */
  tls?: { key: string; cert: string; ca: string }
}

export interface UploadResult {
  /** RSS before the burst, after the same settling time as `after`. */
  idle: number
  peak: number
  /** RSS `afterMs` after the last upload ended. */
  after: number
  afterMs: number
  /** Status codes seen, e.g. { 200: 100 }. */
  statuses: Record<number, number>
  seconds: number
}

/**
 * `count` concurrent uploads of `bytes` each (one connection each, as 100
 * clients would), sampling the RSS of `pid` every 20 ms from the first byte
 * until `afterMs` after the last response.
 */
export async function uploads(
  pid: number,
  target: UploadTarget,
  { count = 100, bytes = 1 << 20, afterMs = 10_000, settleMs = 3000 } = {},
): Promise<UploadResult> {
  const idle = await settledRss(pid, settleMs)
  let peak = idle
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(pid))
  }, 20)
  const body = Buffer.alloc(bytes, 0x61)
  const statuses: Record<number, number> = {}
  const url = new URL(target.url)
  const agent = new Agent({ keepAlive: false, maxSockets: count })
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: count }, async () => {
      const options = {
        method: 'POST',
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
      }
      const req =
        target.tls === undefined
          ? httpRequest({ ...options, agent })
          : httpsRequest({ ...options, ...target.tls, rejectUnauthorized: false, agent: false })
      // Listened for before the body goes: a hop that answers early (a refusal mid-upload) must not be missed.
      const response = once(req, 'response')
      // Written in 64 KB pieces, as a client streaming a file would.
      for (let off = 0; off < bytes; off += 65_536) {
        if (!req.write(body.subarray(off, Math.min(bytes, off + 65_536)))) await once(req, 'drain')
      }
      req.end()
      const [res] = (await response) as [import('node:http').IncomingMessage]
      res.resume()
      await once(res, 'end')
      statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1
    }),
  )
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  agent.destroy()
  await sleep(afterMs)
  clearInterval(sampler)
  return { idle, peak, after: rssMb(pid), afterMs, statuses, seconds }
}
