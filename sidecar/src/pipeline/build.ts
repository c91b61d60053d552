/**
 * The pipeline: an ordered list of stages, then the forwarder. A listener
 * builds one exchange per request and hands it here with its response (or,
 * for an upgrade, its socket). This is the one place a refusal becomes an
 * answer: `sendError` for requests, `writeRawError` for upgrades. Stages run
 * synchronously until one returns a promise; only then does the rest wait.
 */
import type { ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { isSvidecarError, SvidecarError } from '../errors/index.ts'
import { guardBody } from '../forwarder/body-guard.ts'
import { forwardHeaders } from '../forwarder/headers.ts'
import { type ForwardOptions, forwardHttp, hasBody } from '../forwarder/http.ts'
import { writeRawError } from '../forwarder/raw-error.ts'
import { sendError, sendReply } from '../forwarder/respond.ts'
import { relayWebSocket, upgradeHeaders } from '../forwarder/websocket.ts'
import { readCappedBody } from './body.ts'
import type { Exchange } from './exchange.ts'
import type { FrameFilter, ResponseWrapper, Stage, StageResult } from './stage.ts'

export interface PipelineOptions {
  /** Body limits of the listener (body-guard.ts). */
  limits: { maxBodyBytes: number; bodyIdleTimeoutMs: number }
  /** The upstream's WebSocket handshake deadline. */
  connectTimeoutMs: number
}

export interface Pipeline {
  readonly stages: readonly Stage[]
  request(exchange: Exchange, res: ServerResponse): void
  upgrade(exchange: Exchange, socket: Duplex, head: Buffer): void
}

// ws would take 100 MiB per message; a tool call or token stream needs a fraction of that.
export const MAX_WEBSOCKET_MESSAGE_BYTES = 16 * 1024 * 1024

type Body = { kind: 'request'; res: ServerResponse } | { kind: 'upgrade' }

/** Runs the stages from `from` on; calls `done` with the first refusal, or undefined when all let it pass. */
function run(
  stages: readonly Stage[],
  exchange: Exchange,
  at: Body,
  from: number,
  done: (refusal: StageResult) => void,
  limits: PipelineOptions['limits'],
): void {
  for (let i = from; i < stages.length; i++) {
    const stage = stages[i] as Stage
    let result: StageResult | Promise<StageResult>
    const bodyLimit = typeof stage.bodyLimit === 'function' ? stage.bodyLimit(exchange) : stage.bodyLimit
    if (bodyLimit !== undefined && at.kind === 'request' && exchange.body === undefined) {
      if (!hasBody(exchange.req)) exchange.body = Buffer.alloc(0)
      else {
        // Never more than the listener itself lets through, and under the same idle limit.
        const max = limits.maxBodyBytes > 0 ? Math.min(limits.maxBodyBytes, bodyLimit) : bodyLimit
        readCappedBody(exchange.req, at.res, { maxBytes: max, idleTimeoutMs: limits.bodyIdleTimeoutMs }).then(
          (body) => {
            exchange.body = body
            run(stages, exchange, at, i, done, limits)
          },
          (err: unknown) => done(asRefusal(err)),
        )
        return
      }
    }
    try {
      result = stage.onRequest(exchange)
    } catch (err) {
      done(asRefusal(err))
      return
    }
    if (result instanceof Promise) {
      result.then(
        (refusal) => (refusal === undefined ? run(stages, exchange, at, i + 1, done, limits) : done(refusal)),
        (err: unknown) => done(asRefusal(err)),
      )
      return
    }
    if (result !== undefined) {
      done(result)
      return
    }
  }
  done(undefined)
}

/** A stage that threw something other than a refusal: the client learns nothing of it (respond.ts). */
function asRefusal(err: unknown): SvidecarError {
  return isSvidecarError(err)
    ? err
    : new SvidecarError('SVD_INTERNAL', 'internal error', { reason: 'STAGE_FAILED', cause: err })
}

export function buildPipeline(stages: readonly Stage[], options: PipelineOptions): Pipeline {
  const wrapping = stages.filter((s) => s.wrapResponse !== undefined)
  return {
    stages,
    request(exchange, res) {
      run(
        stages,
        exchange,
        { kind: 'request', res },
        0,
        (refusal) => {
          // The client left while a stage was deciding (a decision service, a body read): nothing to answer.
          if (res.destroyed) {
            exchange.end(499, 'CLIENT_ABORTED')
            return
          }
          const upstream = exchange.upstream
          if (refusal !== undefined || upstream === undefined) {
            const err = refusal ?? new SvidecarError('SVD_ROUTE_NOT_FOUND', 'no route')
            const reply = refusal === undefined ? undefined : exchange.reply
            if (reply === undefined) sendError(res, err, exchange.errorStyle)
            else sendReply(res, reply)
            exchange.end(reply?.status ?? err.status, err.code, err)
            return
          }
          const req = exchange.req
          // Assigned field by field rather than spread from small objects: this runs for every request.
          const forward: ForwardOptions = {
            headers: outgoing(exchange, false),
            onEnd: exchange.end,
            errorStyle: exchange.errorStyle,
          }
          if (exchange.body !== undefined) forward.body = exchange.body
          else if (hasBody(req)) forward.body = guardBody(req, res, options.limits)
          if (wrapping.length > 0) {
            forward.wrap = (head) =>
              wrapping
                .map((s) => s.wrapResponse?.(exchange, head))
                .filter((w): w is ResponseWrapper => w !== undefined)
          }
          forwardHttp(req, res, upstream, forward)
        },
        options.limits,
      )
    },
    upgrade(exchange, socket, head) {
      run(
        stages,
        exchange,
        { kind: 'upgrade' },
        0,
        (refusal) => {
          const upstream = exchange.upstream
          if (refusal !== undefined || upstream === undefined) {
            const err = refusal ?? new SvidecarError('SVD_ROUTE_NOT_FOUND', 'no route')
            writeRawError(socket, err)
            exchange.end(err.status, err.code, err)
            return
          }
          const createConnection = upstream.createConnection()
          const scheme = upstream.url.protocol === 'http:' ? 'ws' : 'wss'
          relayWebSocket(
            exchange.req,
            socket,
            head,
            {
              url: `${scheme}://${upstream.url.host}${upstream.basePath}${exchange.req.url ?? '/'}`,
              upstream: upstream.name,
              headers: upgradeHeaders(outgoing(exchange, true)),
              ...(createConnection === undefined ? {} : { createConnection }),
              maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES,
              handshakeTimeoutMs: options.connectTimeoutMs,
              frames: stages
                .map((s) => s.wrapUpgrade?.(exchange))
                .filter((f): f is FrameFilter => f !== undefined),
            },
            exchange.end,
          )
        },
        options.limits,
      )
    },
  }
}

function outgoing(exchange: Exchange, isUpgrade: boolean): string[] {
  const { stripped, set } = exchange.headers
  return forwardHeaders(exchange.req.rawHeaders, {
    strip: stripped,
    set,
    isUpgrade,
    httpVersion: exchange.req.httpVersion,
  })
}
