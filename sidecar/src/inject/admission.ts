/**
 * AdmissionReview v1 (k8s.io/api/admission/v1) in and out. No npm package
 * ships these types, so the fields the injector reads and writes are typed
 * here.
 *
 * Whatever arrives, the answer is an AdmissionReview: a review we cannot read
 * (malformed, another version, a kind or operation we do not handle) is
 * allowed unchanged with a warning, because the API server only sends what
 * the webhook configuration selects, and anything else is a misconfiguration
 * that must not block pods in namespaces that never asked for svidecar. Only
 * a pod we were asked to inject and cannot is denied, with the reason.
 */
import { isSvidecarError } from '../errors/index.ts'
import { type InjectResult, inject } from './inject.ts'
import type { AddOperation } from './json-patch.ts'
import type { InjectorOptions } from './options.ts'

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1'

interface GroupVersionKind {
  group: string
  version: string
  kind: string
}

export interface AdmissionRequest {
  uid: string
  kind: GroupVersionKind
  resource?: { group: string; version: string; resource: string }
  subResource?: string
  name?: string
  namespace?: string
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT'
  object?: unknown
  dryRun?: boolean
}

export interface AdmissionResponse {
  uid: string
  allowed: boolean
  patchType?: 'JSONPatch'
  /** Base64 of the JSON Patch. */
  patch?: string
  warnings?: string[]
  status?: { code: number; message: string; reason?: string }
}

export interface AdmissionReview {
  apiVersion: string
  kind: 'AdmissionReview'
  request?: AdmissionRequest
  response?: AdmissionResponse
}

/** How a review ended, for the log line and the metrics of the webhook (bounded values). */
export type ReviewOutcome = 'injected' | 'skipped' | 'ignored' | 'denied'

export interface ReviewResult {
  review: AdmissionReview
  outcome: ReviewOutcome
  /** One line for the log: what happened and why. */
  detail: string
  patch: AddOperation[]
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

// The API server shows warnings to the user; it truncates long ones and rejects odd characters.
function warning(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, ' ')
  return clean.length <= 200 ? clean : `${clean.slice(0, 197)}...`
}

/**
 * Answers one AdmissionReview body (already parsed JSON, or undefined when it
 * was not JSON; `unreadable` says why when the body could not be read at all).
 */
export function review(body: unknown, options: InjectorOptions, unreadable?: string): ReviewResult {
  // Echo the version the caller spoke when it is one whose response has the same shape; v1 otherwise.
  const apiVersion =
    isObject(body) &&
    (body.apiVersion === 'admission.k8s.io/v1beta1' || body.apiVersion === ADMISSION_API_VERSION)
      ? body.apiVersion
      : ADMISSION_API_VERSION
  const request = isObject(body) && isObject(body.request) ? body.request : undefined
  const uid = typeof request?.uid === 'string' ? request.uid : ''
  const answer = (
    outcome: ReviewOutcome,
    detail: string,
    response: Omit<AdmissionResponse, 'uid'>,
    patch: AddOperation[] = [],
  ): ReviewResult => ({
    review: { apiVersion, kind: 'AdmissionReview', response: { uid, ...response } },
    outcome,
    detail,
    patch,
  })
  const ignore = (detail: string) =>
    answer('ignored', detail, {
      allowed: true,
      warnings: [warning(`svidecar: ${detail}; the object was admitted without a sidecar`)],
    })

  if (unreadable !== undefined) return ignore(unreadable)
  if (!isObject(body)) return ignore('the request body is not a JSON AdmissionReview')
  if (body.kind !== 'AdmissionReview') return ignore(`kind "${String(body.kind)}" is not AdmissionReview`)
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    return ignore(
      `AdmissionReview ${String(body.apiVersion)} is not supported (register admissionReviewVersions: [v1])`,
    )
  }
  if (request === undefined) return ignore('the AdmissionReview has no request')
  if (uid === '') return ignore('the AdmissionReview request has no uid')
  const kind = isObject(request.kind) ? request.kind : {}
  if (kind.group !== '' || kind.version !== 'v1' || kind.kind !== 'Pod') {
    const name = [kind.group, kind.version, kind.kind]
      .filter((s) => typeof s === 'string' && s !== '')
      .join('/')
    return ignore(`${name || 'an object of no kind'} is not a Pod, which is all the webhook injects into`)
  }
  if (request.operation !== 'CREATE') return ignore(`operation ${String(request.operation)} is not CREATE`)
  if (typeof request.subResource === 'string' && request.subResource !== '') {
    return ignore(`subresource ${request.subResource} is not handled`)
  }
  if (!isObject(request.object)) return ignore('the AdmissionReview request has no object')

  const namespace =
    typeof request.namespace === 'string' && request.namespace !== '' ? request.namespace : undefined
  let result: InjectResult
  try {
    // The API server called us, so its selectors decided the namespace (or the pod) opted in. dryRun
    // changes nothing: the patch is computed alike (sideEffects: None).
    result = inject(request.object, options, { namespace, namespaceOptedIn: true })
  } catch (err) {
    if (isSvidecarError(err, 'SVD_INJECT_CONFLICT') || isSvidecarError(err, 'SVD_INJECT_INVALID')) {
      return answer('denied', `${err.code}: ${err.message}`, {
        allowed: false,
        status: {
          code: err.status,
          reason: err.status === 409 ? 'Conflict' : 'Invalid',
          message: `svidecar: ${err.message}`,
        },
      })
    }
    // A bug: deny (failurePolicy Fail says the same for an injector that cannot answer) and say so.
    const message = err instanceof Error ? err.message : String(err)
    return answer('denied', `SVD_INTERNAL: ${message}`, {
      allowed: false,
      status: {
        code: 500,
        reason: 'InternalError',
        message: 'svidecar: the injector failed on this pod (SVD_INTERNAL); see its log',
      },
    })
  }
  const warnings = result.warnings.map(warning)
  if (!result.injected) {
    return answer('skipped', result.reason, { allowed: true, ...(warnings.length > 0 ? { warnings } : {}) })
  }
  return answer(
    'injected',
    `injected (${result.status?.mode ?? ''})`,
    {
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(result.patch)).toString('base64'),
      ...(warnings.length > 0 ? { warnings } : {}),
    },
    result.patch,
  )
}
