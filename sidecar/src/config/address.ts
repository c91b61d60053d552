import { isIP } from 'node:net'

export interface HostPort {
  host: string
  port: number
}

/** "127.0.0.1:15001", "[::1]:15001", "localhost:8080", "0.0.0.0:0"; or a reason why not. */
export function parseHostPort(value: string): HostPort | string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value.trim())
  if (m === null) return 'expected host:port (an IPv6 host in brackets)'
  const host = (m[1] ?? m[2]) as string
  const port = Number(m[3])
  if (port > 65535) return `port ${port} is out of range`
  if (m[1] !== undefined && isIP(host) !== 6) return `"${host}" is not an IPv6 address`
  return { host, port }
}

/** The form parseHostPort reads back and a client can dial: an IPv6 host in brackets. */
export function formatHostPort(a: HostPort): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

/**
 * The host to hand Node's listen(): `::` becomes none, which Node binds as `::` (dual-stack, IPv4 too) where the
 * kernel has IPv6, and as `0.0.0.0` where it has not, so `[::]` means "every address" on any host and can be the
 * default in a cluster whose pod IPs may be IPv6 only.
 */
export function listenHost(host: string): string | undefined {
  return host === '::' ? undefined : host
}

export function isLoopback(host: string): boolean {
  const h = host.toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}
