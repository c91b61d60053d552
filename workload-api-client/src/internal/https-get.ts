/**
 * One HTTPS GET with a hard deadline and a hard body cap, for bundle
 * endpoints: the TLS connection is made here so that the caller's `verify`
 * runs on the established socket before the request is written, and a peer
 * that fails it never sees a request.
 */
import { request } from 'node:http'
import { isIP } from 'node:net'
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls'
import { errorMessage, SpiffeError } from '../errors.ts'

export interface HttpsGetOptions {
  url: URL
  /** Extra options for tls.connect (roots, rejectUnauthorized). */
  tls: ConnectionOptions
  /** Runs once the handshake is done; throws to refuse the peer before the request is sent. */
  verify?: (socket: TLSSocket) => void
  timeoutMs: number
  maxBytes: number
  signal?: AbortSignal | undefined
  /** For messages: what is being fetched. */
  what: string
}

export interface HttpsGetResult {
  status: number
  location: string | undefined
  body: Buffer
}

function unavailable(reason: string, message: string, cause?: unknown): SpiffeError {
  return new SpiffeError(
    'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE',
    message,
    cause === undefined ? { reason } : { reason, cause },
  )
}

export function httpsGet(opts: HttpsGetOptions): Promise<HttpsGetResult> {
  const { url, what } = opts
  return new Promise<HttpsGetResult>((resolve, reject) => {
    let socket: TLSSocket | undefined
    let settled = false
    const finish = (err: Error | undefined, result?: HttpsGetResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      socket?.destroy()
      if (err !== undefined) reject(err)
      else resolve(result as HttpsGetResult)
    }
    const timer = setTimeout(
      () => finish(unavailable('TIMEOUT', `${what}: no complete answer within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    )
    const onAbort = (): void => finish(unavailable('ABORTED', `${what}: aborted`, opts.signal?.reason))
    if (opts.signal?.aborted) return onAbort()
    opts.signal?.addEventListener('abort', onAbort, { once: true })

    // URL keeps IPv6 literals bracketed; sockets and SNI want them bare, and SNI never carries an IP.
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    const port = url.port === '' ? 443 : Number(url.port)
    const tlsSocket = connect({
      ...opts.tls,
      host,
      port,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ALPNProtocols: ['http/1.1'],
    })
    socket = tlsSocket
    // `on`, not `once`: a second error from a dying socket must not become an uncaught exception.
    tlsSocket.on('error', (err) => {
      finish(
        isCertificateError(err)
          ? new SpiffeError(
              'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED',
              `${what}: the server certificate is not trusted for ${host}: ${errorMessage(err)}`,
              { reason: 'WEB_PKI', cause: err },
            )
          : unavailable('NETWORK', `${what}: ${errorMessage(err)}`, err),
      )
    })
    tlsSocket.once('secureConnect', () => {
      try {
        opts.verify?.(tlsSocket)
      } catch (err) {
        return finish(err as Error)
      }
      const req = request({
        host,
        port,
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { accept: 'application/json', host: url.host },
        createConnection: () => tlsSocket,
      })
      req.once('error', (err) => finish(unavailable('NETWORK', `${what}: ${errorMessage(err)}`, err)))
      req.once('response', (res) => {
        const status = res.statusCode ?? 0
        const location = typeof res.headers.location === 'string' ? res.headers.location : undefined
        if (status < 200 || status >= 300) {
          res.resume()
          return finish(undefined, { status, location, body: Buffer.alloc(0) })
        }
        const declared = Number(res.headers['content-length'])
        if (Number.isFinite(declared) && declared > opts.maxBytes) {
          return finish(tooLarge(what, opts.maxBytes))
        }
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > opts.maxBytes) return finish(tooLarge(what, opts.maxBytes))
          chunks.push(chunk)
        })
        res.once('error', (err) => finish(unavailable('NETWORK', `${what}: ${errorMessage(err)}`, err)))
        res.once('end', () => finish(undefined, { status, location, body: Buffer.concat(chunks, size) }))
      })
      req.end()
    })
  })
}

function tooLarge(what: string, maxBytes: number): SpiffeError {
  return new SpiffeError('SPIFFE_BUNDLE_INVALID', `${what}: the document is larger than ${maxBytes} bytes`, {
    reason: 'TOO_LARGE',
  })
}

// OpenSSL's X509_V_ERR_* names as Node reports them, and Node's own hostname check.
const CERTIFICATE_ERROR =
  /^(?:ERR_TLS_CERT_ALTNAME_INVALID|UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|INVALID_CA|PATH_LENGTH_|INVALID_PURPOSE)/

function isCertificateError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return typeof code === 'string' && CERTIFICATE_ERROR.test(code)
}
