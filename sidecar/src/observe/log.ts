/**
 * JSON-lines logs with redaction. Keys that name a secret are replaced
 * whatever their value; values that look like a bearer token, a JWT or a
 * provider key are replaced wherever they appear, the message included.
 * Errors are logged by name, code and message; stacks only at debug level.
 */
import { on } from './events.ts'

export type Level = 'debug' | 'info' | 'warn' | 'error'

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

export interface LoggerOptions {
  level?: Level
  stream?: { write(line: string): unknown }
  now?: () => Date
}

const SECRET_KEY = /authorization|api[-_]?key|token|secret|password|passwd|cookie|private|(^|[-_])key$/i
// A bearer or Basic (RFC 7617) credential, or a provider key (sk-…, sk-ant-…). JWTs are found by jwtEnd.
const SECRET_VALUE =
  /\b[Bb]earer\s+[A-Za-z0-9._~+/=-]+|\b[Bb]asic\s+[A-Za-z0-9+/]{8,}={0,2}|\bsk-[A-Za-z0-9_-]{8,}/g
// The password of a URI's userinfo (RFC 3986 3.2.1: `scheme://user:password@host`), as MCP resource URIs and
// connection strings carry it; the user name and the host stay readable. Anchored on `://`, not on the scheme:
// a scheme pattern restarted at every letter of `a.a.a.…` and went quadratic.
const SECRET_USERINFO = /(:\/\/[^\s/?#@:]*:)[^\s/?#@]*@/g
// A query or fragment parameter whose name says it holds a credential (`?access_token=…`, `&api_key=…`, and
// OAuth's implicit grant `#access_token=…`, RFC 6749 4.2.2): its value goes.
// The name stops at the next separator and is tested apart: one pattern with the words inside it backtracked
// cubically on a path of `;key` repeated (24 s of event loop for 8 KB of a client's path).
const PARAM = /([?&;#][^=&#;?\s]*=)([^&#\s]*)/g
const SECRET_PARAM_NAME = /token|key|secret|password|passwd|auth|session|sig/i
const REDACTED = '[redacted]'

// Everything here runs on text a client chose (paths, tool names, URIs, whole bodies quoted in a reason), on
// the event loop: each pattern must be linear in the length of its input.
const JWT_START = /\beyJ/g
const B64URL = /[A-Za-z0-9_-]/

function runEnd(s: string, from: number): number {
  let i = from
  while (i < s.length && B64URL.test(s[i] as string)) i++
  return i
}

/**
 * JWTs (`eyJ…` header, payload and signature in base64url, joined by dots) replaced. A scan rather than one
 * pattern: `\beyJ[…]*\.` retried at every `eyJ` of `eyJ-eyJ-…` rescans the same run each time (quadratic);
 * here every start inside a run that has failed is skipped, since it would fail at the same place.
 */
function redactJwts(s: string): string {
  let out = ''
  let copied = 0
  JWT_START.lastIndex = 0
  for (let m = JWT_START.exec(s); m !== null; m = JWT_START.exec(s)) {
    const start = m.index
    const header = runEnd(s, start + 3)
    const payload = s[header] === '.' ? runEnd(s, header + 1) : -1
    if (payload <= header + 1 || s[payload] !== '.') {
      JWT_START.lastIndex = Math.max(header, start + 1)
      continue
    }
    const end = runEnd(s, payload + 1)
    out += `${s.slice(copied, start)}${REDACTED}`
    copied = end
    JWT_START.lastIndex = end
  }
  return copied === 0 ? s : out + s.slice(copied)
}

// Something every pattern above needs: a bearer or Basic credential's word, a provider key's `sk-`, a JWT's `eyJ`,
// a userinfo's `@`, a parameter's `=`. Most strings an audit line carries (SPIFFE IDs, paths, model and rule
// names) have none of them, and then one pass answers instead of four.
const MAY_HOLD_SECRET = /earer|asic|sk-|eyJ|[@=]/

/** The value-based redaction of the logger, for any text that leaves the process (log and audit lines). */
export function redactString(s: string): string {
  if (!MAY_HOLD_SECRET.test(s)) return s
  return redactJwts(s.replace(SECRET_VALUE, REDACTED))
    .replace(SECRET_USERINFO, `$1${REDACTED}@`)
    .replace(PARAM, (whole, name: string) => (SECRET_PARAM_NAME.test(name) ? `${name}${REDACTED}` : whole))
}

function redact(value: unknown, showStack = false, depth = 0): unknown {
  if (depth > 8) return '[deep]'
  if (typeof value === 'string') return redactString(value)
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; reason?: unknown }
    return {
      name: e.name,
      ...(e.code === undefined ? {} : { code: e.code }),
      ...(e.reason === undefined ? {} : { reason: e.reason }),
      message: redactString(e.message),
      ...(showStack && e.stack ? { stack: redactString(e.stack) } : {}),
    }
  }
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.map((v) => redact(v, showStack, depth + 1))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value))
      out[k] = SECRET_KEY.test(k) ? REDACTED : redact(v, showStack, depth + 1)
    return out
  }
  return value
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? 'info']
  const stream = options.stream ?? process.stderr
  const now = options.now ?? (() => new Date())
  const debug = min <= ORDER.debug
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return
    const record = {
      time: now().toISOString(),
      level,
      msg: redactString(msg),
      ...(fields ? (redact(fields, debug) as object) : {}),
    }
    stream.write(`${JSON.stringify(record)}\n`)
  }
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  }
}

/** Logs what an operator needs to follow: identity changes, refusals, lifecycle; requests at debug. */
export function subscribeLogs(log: Logger): () => void {
  const off = [
    on('identity', (e) =>
      e.status === 'ready'
        ? log.info('identity updated', {
            spiffeId: e.spiffeId,
            serial: e.serial,
            notAfter: e.notAfter,
            generation: e.generation,
          })
        : log.warn('identity unavailable: failing closed', { reason: e.reason }),
    ),
    // A peer hanging up mid-handshake is what TCP health checks and port scans do: counted, logged at debug only.
    on('tlsRejected', (e) =>
      (e.reason === 'PEER_CLOSED' ? log.debug : log.warn)(`TLS handshake refused: ${e.message}`, {
        listener: e.listener,
        direction: e.direction,
        code: e.code,
        reason: e.reason,
        ...(e.detail === undefined ? {} : { detail: e.detail }),
      }),
    ),
    on('lifecycle', (e) =>
      log.info(`lifecycle: ${e.event}`, e.detail === undefined ? undefined : { detail: e.detail }),
    ),
    on('request', (e) => {
      // Upstream failures get their own line with the cause (upstreamFailed); other refusals are the client's.
      if (e.code === 'SVD_INTERNAL') log.error('request failed on an internal error', { ...e })
      else if (e.code !== undefined && !e.code.startsWith('SVD_UPSTREAM_'))
        log.info('request refused', { ...e })
      else log.debug('request', { ...e })
    }),
    on('refused', (e) =>
      e.code === 'SVD_CONNECTION_IDLE'
        ? log.debug('idle connection closed', { ...e })
        : log.info('connection refused', { ...e }),
    ),
    // Above debug: an operator must see why an upstream failed without turning on request logs.
    on('upstreamFailed', (e) => log.warn('upstream exchange failed', { ...e })),
  ]
  return () => {
    for (const f of off) f()
  }
}
