/**
 * The Node floor beside svidecar in the benchmarks: bench/minimal-proxy.ts
 * (undici, no checks) or bench/minimal-http-proxy.ts (node:http's client),
 * started as its own process. What svidecar adds above it is the price of
 * its features; what the floor itself adds is the runtime's and the host's.
 */
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { firstLine, pinned } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))

export interface FloorOptions {
  /** inbound: mTLS in, plaintext out; outbound: plaintext in, plaintext or mTLS out (by the upstream's scheme). */
  listen: 'inbound' | 'outbound'
  upstream: string
  /** The proxy's certificate chain, key and trust bundle; required inbound and for an https upstream. */
  tls?: { key: string; cert: string; ca: string }
  /** node:http's client instead of undici (bench/minimal-http-proxy.ts), pooled or one socket per connection. */
  mode?: 'pool' | 'affine'
}

/** The script and its argument, to start with Node (after the caller's flags). */
export function floorArgv(o: FloorOptions): string[] {
  const script = o.mode === undefined ? 'minimal-proxy.ts' : 'minimal-http-proxy.ts'
  return [join(here, script), JSON.stringify(o)]
}

/** Starts the floor pinned to `core`; resolves once it listens. */
export async function startFloor(
  core: number,
  nodeFlags: string[],
  o: FloorOptions,
): Promise<{ child: ChildProcess; pid: number; port: number }> {
  const child = pinned(core, process.execPath, [...nodeFlags, ...floorArgv(o)])
  const port = Number(await firstLine(child, /^\d+$/))
  return { child, pid: child.pid as number, port }
}
