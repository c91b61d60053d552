/**
 * The sidecar's side of peer verification. The SPIFFE check itself (the
 * presented chain against the bundle of the peer's own trust domain, what
 * OpenSSL would also refuse, the authorizer, and the Node 24 server-side
 * chain loss nodejs/node#65579 that decides where the chain is read) is the
 * library's, run by its SpiffeTlsServer and SpiffeTlsClient; this turns
 * their refusal into the sidecar's error code for the direction, keeping the
 * library's reason. sidecar/test/chain.test.ts pins the chain-reading
 * behaviours.
 */
import type { TLSSocket } from 'node:tls'
import { isSpiffeError, peerChain, type SpiffeId } from 'workload-api-client'
import { SvidecarError, type SvidecarErrorCode } from '../errors/index.ts'
import { publishTlsHandshake, wantsTlsHandshake } from '../observe/events.ts'

export { peerChain }

/** The event of a handshake whose peer passed, built only when someone listens. */
export function publishHandshake(
  listener: string,
  direction: 'inbound' | 'outbound',
  id: SpiffeId,
  socket: TLSSocket,
): void {
  if (!wantsTlsHandshake()) return
  publishTlsHandshake({
    listener,
    direction,
    peerId: id.toString(),
    resumed: socket.isSessionReused(),
    peerSerial: peerSerial(socket),
    protocol: socket.getProtocol() ?? '',
  })
}

/** The peer leaf's serial number (upper-case hex), for events. */
function peerSerial(socket: TLSSocket): string {
  const cert = socket.getPeerCertificate()
  return cert !== null && typeof cert === 'object' && typeof cert.serialNumber === 'string'
    ? cert.serialNumber
    : ''
}

/**
 * A peer the library refused, as SvidecarError with `code`
 * (SVD_PEER_REJECTED inbound, where the peer is a TLS client;
 * SVD_UPSTREAM_PEER_REJECTED outbound, where it is a server) and the rule
 * broken as `reason`.
 */
export function peerRejected(err: unknown, code: SvidecarErrorCode): SvidecarError {
  if (!isSpiffeError(err)) {
    return new SvidecarError(code, 'peer certificate could not be verified', {
      reason: 'UNVERIFIABLE',
      cause: err,
    })
  }
  if (err.code === 'SPIFFE_SVID_INVALID' && err.reason === 'EMPTY') {
    return new SvidecarError(code, 'the peer presented no certificate', { reason: 'NO_CERTIFICATE' })
  }
  if (err.code === 'SPIFFE_PEER_UNAUTHORIZED') {
    return new SvidecarError(code, err.message, { reason: 'UNAUTHORIZED' })
  }
  return new SvidecarError(code, `peer certificate rejected: ${err.message}`, {
    reason: err.reason ?? err.code,
    cause: err,
  })
}
