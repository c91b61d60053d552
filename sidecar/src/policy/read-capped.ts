/**
 * A policy file's text (built-in YAML, Cedar policies or schema), read under
 * a byte cap so a runaway file cannot take the sidecar's memory.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { SvidecarError } from '../errors/index.ts'

/** The file's UTF-8 text; SVD_POLICY_UNREADABLE when it cannot be read or is over `max` bytes. */
export function readPolicyText(path: string, max: number): string {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const size = fstatSync(fd).size
    if (size > max) throw tooLarge(path, max, size)
    // Read at most one byte past the cap: a file that grew after fstat is still refused.
    const buf = Buffer.alloc(Math.min(size, max) + 1)
    let n = 0
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, null)
      if (r === 0) break
      n += r
    }
    if (n > max) throw tooLarge(path, max)
    return buf.subarray(0, n).toString('utf8')
  } catch (err) {
    if (err instanceof SvidecarError) throw err
    throw new SvidecarError(
      'SVD_POLICY_UNREADABLE',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { where: path, cause: err },
    )
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

function tooLarge(path: string, max: number, size?: number): SvidecarError {
  return new SvidecarError(
    'SVD_POLICY_UNREADABLE',
    `${path}: ${size === undefined ? '' : `${size} bytes, `}over the ${max}-byte limit for a policy file`,
    { where: path, reason: 'TOO_LARGE' },
  )
}
