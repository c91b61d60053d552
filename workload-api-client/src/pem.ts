/**
 * PEM (RFC 7468) for the two places it appears: bundles and SVIDs read from
 * files, and the certificate chain and key that node:tls wants.
 */
import { SpiffeError, type SpiffeErrorCode } from './errors.ts'

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g
const BASE64_BODY = /^[A-Za-z0-9+/=\s]*$/

export interface PemBlock {
  readonly label: string
  readonly der: Buffer
}

/** Every PEM block in `text`, in order. Text between blocks (comments) is ignored, as RFC 7468 §2 allows. */
export function parsePemBlocks(text: string, code: SpiffeErrorCode, where: string): PemBlock[] {
  const out: PemBlock[] = []
  for (const m of text.matchAll(BLOCK)) {
    const [, label = '', body = '', endLabel] = m
    if (label !== endLabel) {
      throw new SpiffeError(code, `${where}: PEM block "${label}" ends with "${endLabel}"`, {
        reason: 'BAD_PEM',
      })
    }
    if (!BASE64_BODY.test(body)) {
      throw new SpiffeError(code, `${where}: PEM block "${label}" holds non-base64 text`, {
        reason: 'BAD_PEM',
      })
    }
    out.push({ label, der: Buffer.from(body.replace(/\s+/g, ''), 'base64') })
  }
  return out
}

/** The DER of every block labelled `label`; other labels are an error, so a key pasted into a bundle is caught. */
export function pemToDer(text: string, label: string, code: SpiffeErrorCode, where: string): Buffer[] {
  const blocks = parsePemBlocks(text, code, where)
  for (const b of blocks) {
    if (b.label !== label) {
      throw new SpiffeError(code, `${where}: expected PEM "${label}", found "${b.label}"`, {
        reason: 'BAD_PEM',
      })
    }
  }
  return blocks.map((b) => b.der)
}

export function derToPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64')
  let body = ''
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`
}
