/**
 * LLM request bodies sent with a content coding (RFC 9110 §8.4,
 * `Content-Encoding: gzip` from curl or a client that compresses). The lens
 * decides on the JSON inside, so it decodes the body itself: gzip, deflate
 * (the zlib format RFC 9110 names so), br and zstd, several stacked in the
 * order listed. Never past the lens's body cap, however small the
 * compressed bytes: a decompression bomb is an oversized body. The caller
 * sends the provider the decoded bytes without the coding, so the provider
 * reads exactly what was decided, and sends no coding it may not take.
 */
import { brotliDecompress, gunzip, inflate, zstdDecompress } from 'node:zlib'

export type DecodeProblem = 'UNSUPPORTED' | 'INVALID' | 'TOO_LARGE'

export class BodyDecodeFailed extends Error {
  readonly problem: DecodeProblem
  constructor(problem: DecodeProblem, message: string) {
    super(message)
    this.problem = problem
  }
}

type ZlibCall = (
  body: Buffer,
  options: { maxOutputLength: number },
  done: (err: Error | null, out: Buffer) => void,
) => void

// Asynchronous: the work runs on libuv's pool, not on the thread that serves every other request.
const DECODERS: ReadonlyMap<string, ZlibCall> = new Map<string, ZlibCall>([
  ['gzip', gunzip],
  ['x-gzip', gunzip],
  ['deflate', inflate],
  ['br', brotliDecompress],
  ['zstd', zstdDecompress],
])

function run(call: ZlibCall, body: Buffer, maxOutputLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    call(body, { maxOutputLength }, (err, out) => (err ? reject(err) : resolve(out))),
  )
}

/** More codings than any client stacks: a longer list is refused rather than decoded layer after layer. */
const MAX_CODINGS = 3

/** True when `header` names a coding other than identity (then the body must be decoded to be read). */
export function isEncoded(header: string | undefined): boolean {
  return header !== undefined && codings(header).length > 0
}

/** The body decoded from every coding `header` lists, at most `cap` bytes at each step. */
export async function decodeBody(body: Buffer, header: string, cap: number): Promise<Buffer> {
  const list = codings(header)
  if (list.length > MAX_CODINGS)
    throw new BodyDecodeFailed('UNSUPPORTED', `a body with ${list.length} content codings is not read`)
  const decoders = list.map((c) => {
    const d = DECODERS.get(c)
    if (d === undefined)
      throw new BodyDecodeFailed(
        'UNSUPPORTED',
        `a ${clip(c)} request body is not read; send it uncompressed or as gzip, deflate, br or zstd`,
      )
    return { coding: c, decode: d }
  })
  let out = body
  // Codings are listed in the order they were applied: undo them from the last.
  for (const { coding, decode } of decoders.reverse()) {
    try {
      out = await run(decode, out, cap)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        throw new BodyDecodeFailed('TOO_LARGE', `the request body decodes to more than ${cap} bytes`)
      throw new BodyDecodeFailed('INVALID', `the request body is not valid ${coding} data`)
    }
  }
  return out
}

function codings(header: string): string[] {
  return header
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity')
}

function clip(coding: string): string {
  const printable = coding.replace(/[^\x21-\x7e]/g, '?')
  return printable.length > 32 ? `${printable.slice(0, 32)}…` : printable
}
