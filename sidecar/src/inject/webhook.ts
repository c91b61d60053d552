/**
 * The admission webhook: AdmissionReview v1 over HTTPS on `/inject`, and
 * `/healthz` for the kubelet. The serving certificate and key come from files
 * (a Secret volume, written by cert-manager or by hand) and are re-read on a
 * timer: a Secret update swaps the volume's `..data` symlink, which file
 * watchers miss, so the content is compared instead. A new pair that does not
 * load is logged and the old one kept, so a half-written rotation never takes
 * the webhook down.
 */
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { createSecureContext } from 'node:tls'
import { listenHost } from '../config/address.ts'
import { SvidecarError } from '../errors/index.ts'
import type { Logger } from '../observe/log.ts'
import { review } from './admission.ts'
import type { InjectorOptions } from './options.ts'

// The API server sends one pod (etcd caps objects at 1.5 MiB) plus the review's envelope.
const MAX_BODY_BYTES = 4 * 1024 * 1024

export interface WebhookOptions {
  host: string
  port: number
  certFile: string
  keyFile: string
  /** How often the certificate files are compared with the ones being served. */
  reloadIntervalMs: number
  injector: InjectorOptions
  logger: Logger
}

export interface Webhook {
  readonly address: AddressInfo
  /** Certificate pairs loaded after the first one. */
  readonly reloads: number
  close(): Promise<void>
}

interface Pair {
  cert: Buffer
  key: Buffer
}

function readPair(o: WebhookOptions): Pair {
  try {
    return { cert: readFileSync(o.certFile), key: readFileSync(o.keyFile) }
  } catch (err) {
    throw new SvidecarError(
      'SVD_CONFIG_UNREADABLE',
      `cannot read the serving certificate or key: ${(err as Error).message}`,
      {
        cause: err,
      },
    )
  }
}

export async function startWebhook(o: WebhookOptions): Promise<Webhook> {
  let current = readPair(o)
  try {
    createSecureContext(current)
  } catch (err) {
    throw new SvidecarError(
      'SVD_CONFIG_INVALID',
      `the serving certificate and key do not load: ${(err as Error).message}`,
    )
  }
  let reloads = 0
  const server: Server = createServer({ ...current, minVersion: 'TLSv1.2' }, (req, res) => {
    const url = (req.url ?? '/').split('?')[0]
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
    if (url === '/healthz') return send(200, 'text/plain', 'ok\n')
    if (url !== '/inject')
      return send(404, 'text/plain', 'not found: the webhook serves /inject and /healthz\n')
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST')
      return send(405, 'text/plain', 'POST an AdmissionReview to /inject\n')
    }
    const chunks: Buffer[] = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        tooLarge = true
        chunks.length = 0
      } else if (!tooLarge) chunks.push(chunk)
    })
    req.on('error', () => res.destroy())
    req.on('end', () => {
      let body: unknown
      try {
        body = tooLarge ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        body = undefined
      }
      const result = review(
        body,
        o.injector,
        tooLarge ? `the request body is larger than ${MAX_BODY_BYTES} bytes` : undefined,
      )
      const response = result.review.response
      const request = (body as { request?: { namespace?: unknown; name?: unknown } } | undefined)?.request
      const fields = {
        uid: response?.uid,
        namespace: typeof request?.namespace === 'string' ? request.namespace : undefined,
        ...(tooLarge ? { bytes: size } : {}),
        outcome: result.outcome,
        detail: result.detail,
        ...(response?.warnings ? { warnings: response.warnings } : {}),
      }
      if (result.outcome === 'denied') o.logger.warn('admission review denied', fields)
      else if (result.outcome === 'ignored') o.logger.warn('admission review ignored', fields)
      else o.logger.info('admission review', fields)
      send(200, 'application/json', JSON.stringify(result.review))
    })
  })
  server.on('tlsClientError', (err) => o.logger.debug('TLS handshake failed', { error: err }))

  const timer = setInterval(() => {
    let next: Pair
    try {
      next = readPair(o)
    } catch (err) {
      o.logger.warn('serving certificate unreadable: keeping the one in use', { error: err })
      return
    }
    if (next.cert.equals(current.cert) && next.key.equals(current.key)) return
    try {
      // Throws on a key that does not match the certificate, or a file caught half-written.
      createSecureContext(next)
      server.setSecureContext({ ...next, minVersion: 'TLSv1.2' })
    } catch (err) {
      o.logger.warn('new serving certificate does not load: keeping the one in use', { error: err })
      return
    }
    current = next
    reloads++
    o.logger.info('serving certificate reloaded', { certFile: o.certFile })
  }, o.reloadIntervalMs)
  timer.unref()

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.port, listenHost(o.host), () => {
      server.off('error', reject)
      resolve()
    })
  })
  return {
    address: server.address() as AddressInfo,
    get reloads() {
      return reloads
    },
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer)
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
