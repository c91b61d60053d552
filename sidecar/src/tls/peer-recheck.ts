/**
 * An inbound peer is verified at the handshake, against the bundles and the
 * clock of that moment; a kept-alive connection can outlive both (its trust
 * domain leaves the federated bundles, its SVID expires). Each request on
 * the connection asks again. The answer is kept per connection until the
 * identity's generation changes (new bundles) or the first certificate of
 * the verified path expires, so a request on an unchanged connection costs
 * a lookup, not a path validation.
 */
import type { TLSSocket } from 'node:tls'
import { reverifyTlsPeer } from 'workload-api-client'
import type { SvidecarError } from '../errors/index.ts'
import type { IdentitySnapshot } from '../identity/identity.ts'
import { peerRejected } from './peer.ts'

interface StillValid {
  readonly generation: number
  readonly untilMs: number
}

const checked = new WeakMap<TLSSocket, StillValid>()

/** Undefined while the connection's peer still verifies; otherwise the refusal (SVD_PEER_REJECTED). */
export function recheckPeer(
  socket: TLSSocket,
  snapshot: IdentitySnapshot,
  now: number = Date.now(),
): SvidecarError | undefined {
  const last = checked.get(socket)
  if (last !== undefined && last.generation === snapshot.generation && now <= last.untilMs) return undefined
  try {
    const { verifiedChain } = reverifyTlsPeer(socket, snapshot.bundleSource, { now })
    let untilMs = Number.POSITIVE_INFINITY
    for (const cert of verifiedChain) untilMs = Math.min(untilMs, cert.validToDate.getTime())
    checked.set(socket, { generation: snapshot.generation, untilMs })
    return undefined
  } catch (err) {
    checked.delete(socket)
    return peerRejected(err, 'SVD_PEER_REJECTED')
  }
}
