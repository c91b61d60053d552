/**
 * Who acts, and whether the sidecar may act at all. Inbound, the subject is
 * the peer the TLS layer verified, and it travels to the app in the
 * peer-ID header (every copy the client sent was stripped by the listener).
 * Outbound, the subject is this workload. Either way, with no valid SVID
 * (one that expired mid-connection too) the request is refused: nothing is
 * served on stale credentials, and nothing is sent without an identity.
 */
import type { TLSSocket } from 'node:tls'
import { SvidecarError } from '../errors/index.ts'
import type { Identity, IdentitySnapshot } from '../identity/identity.ts'
import type { Stage } from '../pipeline/stage.ts'

function notReady(identity: Identity): SvidecarError {
  return new SvidecarError('SVD_IDENTITY_UNAVAILABLE', `not ready: ${identity.notReadyReason()}`)
}

/** Whether the peer of a connection still verifies now (tls/peer-recheck.ts); a refusal when it does not. */
export type PeerRecheck = (socket: TLSSocket, snapshot: IdentitySnapshot) => SvidecarError | undefined

/**
 * Inbound: the verified peer (the listener put it in the exchange from the TLS socket) is the subject;
 * `peerIdHeader` (lower-case) carries it to the app. With `recheck`, every request first checks that the
 * connection's peer still verifies against the current bundles and clock.
 */
export function peerIdentityStage(identity: Identity, peerIdHeader: string, recheck?: PeerRecheck): Stage {
  return {
    name: 'identity',
    onRequest(exchange) {
      const peer = exchange.peer
      if (peer === undefined)
        return new SvidecarError('SVD_PEER_REJECTED', 'the connection has no verified peer')
      if (!identity.ready) return notReady(identity)
      if (recheck !== undefined) {
        const snapshot = identity.current()
        if (snapshot === undefined) return notReady(identity)
        const refused = recheck(exchange.req.socket as TLSSocket, snapshot)
        if (refused !== undefined) return refused
      }
      exchange.headers.set[peerIdHeader] = peer.toString()
      return undefined
    },
  }
}

/** Outbound: this workload is the subject. */
export function ownIdentityStage(identity: Identity): Stage {
  return {
    name: 'identity',
    onRequest(exchange) {
      const own = identity.current()
      if (own === undefined) return notReady(identity)
      exchange.subject = own.svid.id
      return undefined
    },
  }
}
