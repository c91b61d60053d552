/**
 * What the policy store reports, on diagnostics_channel like the data
 * plane's events (observe/events.ts): metrics and logs subscribe, the store
 * never waits for them.
 */
import { channel } from 'node:diagnostics_channel'

const POLICY_RELOAD_CHANNEL = 'svidecar:policy:reload'

export interface PolicyReloadEvent {
  readonly source: string
  readonly result: 'success' | 'failure'
  /** Rules in force after the event (the old count when a reload failed). */
  readonly rules: number
  /** Why the reload failed: the error code and the problems, never file contents beyond them. */
  readonly code?: string
  readonly message?: string
}

const reload = channel(POLICY_RELOAD_CHANNEL)

export function publishPolicyReload(e: PolicyReloadEvent): void {
  if (reload.hasSubscribers) reload.publish(e)
}

export function onPolicyReload(handler: (e: PolicyReloadEvent) => void): () => void {
  const fn = (message: unknown) => handler(message as PolicyReloadEvent)
  reload.subscribe(fn)
  return () => reload.unsubscribe(fn)
}
