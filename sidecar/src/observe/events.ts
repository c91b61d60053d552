/**
 * What the data plane reports, as diagnostics_channel messages. Stages
 * publish; metrics and logs subscribe (wired in sidecar.ts). Publishing costs
 * one branch when nobody listens, so the request path never pays for
 * observers it does not have, and an observer can never block a decision.
 */
import { channel } from 'node:diagnostics_channel'

export const CHANNELS = {
  identity: 'svidecar:identity',
  tlsHandshake: 'svidecar:tls:handshake',
  tlsRejected: 'svidecar:tls:rejected',
  request: 'svidecar:request',
  connection: 'svidecar:connection',
  lifecycle: 'svidecar:lifecycle',
} as const

export type Direction = 'inbound' | 'outbound'

export interface IdentityEvent {
  status: 'ready' | 'not-ready'
  spiffeId?: string
  serial?: string
  notAfter?: Date
  generation: number
  reason?: string
  /** The sidecar that published it, when several share one process (the demo, tests). */
  owner?: string
}

export interface TlsHandshakeEvent {
  /** Listener name (inbound) or upstream name (outbound). */
  listener: string
  direction: Direction
  /** Verified, so safe to log; never a metric label. */
  peerId?: string
  /** The serial number of the certificate the peer presented. */
  peerSerial?: string
  resumed: boolean
  protocol?: string
}

export interface TlsRejectedEvent {
  listener: string
  direction: Direction
  code: string
  reason?: string
}

export interface RequestEvent {
  listener: string
  direction: Direction
  method: string
  route?: string
  upstream?: string
  status: number
  /** The sidecar's error code when the sidecar ended the request. */
  code?: string
  durationMs: number
  peerId?: string
}

export interface ConnectionEvent {
  listener: string
  direction: Direction
  event: 'open' | 'close'
}

export interface LifecycleEvent {
  event: 'starting' | 'ready' | 'draining' | 'stopped'
  detail?: string
}

const identity = channel(CHANNELS.identity)
const tlsHandshake = channel(CHANNELS.tlsHandshake)
const tlsRejected = channel(CHANNELS.tlsRejected)
const request = channel(CHANNELS.request)
const connection = channel(CHANNELS.connection)
const lifecycle = channel(CHANNELS.lifecycle)

export function publishIdentity(e: IdentityEvent): void {
  if (identity.hasSubscribers) identity.publish(e)
}
export function publishTlsHandshake(e: TlsHandshakeEvent): void {
  if (tlsHandshake.hasSubscribers) tlsHandshake.publish(e)
}
export function publishTlsRejected(e: TlsRejectedEvent): void {
  if (tlsRejected.hasSubscribers) tlsRejected.publish(e)
}
export function publishRequest(e: RequestEvent): void {
  if (request.hasSubscribers) request.publish(e)
}
export function publishConnection(e: ConnectionEvent): void {
  if (connection.hasSubscribers) connection.publish(e)
}
export function publishLifecycle(e: LifecycleEvent): void {
  if (lifecycle.hasSubscribers) lifecycle.publish(e)
}

/** Subscribes to one channel with a typed handler; returns the unsubscribe function. */
export function on<K extends keyof EventMap>(name: K, handler: (e: EventMap[K]) => void): () => void {
  const ch = channel(CHANNELS[name])
  const fn = (message: unknown) => handler(message as EventMap[K])
  ch.subscribe(fn)
  return () => ch.unsubscribe(fn)
}

export interface EventMap {
  identity: IdentityEvent
  tlsHandshake: TlsHandshakeEvent
  tlsRejected: TlsRejectedEvent
  request: RequestEvent
  connection: ConnectionEvent
  lifecycle: LifecycleEvent
}
