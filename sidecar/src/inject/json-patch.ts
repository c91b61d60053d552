/**
 * Builds an RFC 6902 JSON Patch while applying it to a copy of the document,
 * so every operation is written against the document as the earlier ones left
 * it. That settles the RFC's traps in one place: `add` needs an existing
 * parent, so a missing `metadata.annotations` or `initContainers` is added
 * whole; keys are escaped (`/` as `~1`, `~` as `~0`).
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }
export type Segment = string | number

/** The only operation the injector needs: it adds and never removes or replaces what the user wrote. */
export interface AddOperation {
  op: 'add'
  path: string
  value: JsonValue
}

export function escapePointerToken(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1')
}

export function pointer(segments: readonly Segment[]): string {
  return segments.map((s) => `/${escapePointerToken(String(s))}`).join('')
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export class PatchBuilder {
  readonly operations: AddOperation[] = []
  /** The document with every operation so far applied. */
  readonly document: JsonObject

  constructor(original: JsonObject) {
    this.document = structuredClone(original)
  }

  /** The value at a path of the patched document, or undefined. */
  get(path: readonly Segment[]): JsonValue | undefined {
    let node: JsonValue | undefined = this.document
    for (const seg of path) {
      if (Array.isArray(node) && typeof seg === 'number') node = node[seg]
      else if (isObject(node) && typeof seg === 'string' && Object.hasOwn(node, seg)) node = node[seg]
      else return undefined
    }
    return node
  }

  /**
   * Sets `key` in the object at `parent`, creating the missing objects on the
   * way with one `add` of the outermost missing one.
   */
  setKey(parent: readonly Segment[], key: string, value: JsonValue): void {
    const path = [...parent, key]
    let node: JsonValue = this.document
    for (let i = 0; i < path.length; i++) {
      const seg = path[i] as Segment
      if (Array.isArray(node)) {
        // Arrays on the way must exist: the injector only ever walks into containers it found.
        const next: JsonValue | undefined = typeof seg === 'number' ? node[seg] : undefined
        if (next === undefined || i === path.length - 1) throw new TypeError(`${pointer(path)} is not there`)
        node = next
        continue
      }
      if (!isObject(node)) throw new TypeError(`${pointer(path.slice(0, i))} is not an object`)
      const k = String(seg)
      const next: JsonValue | undefined = node[k]
      if (i < path.length - 1 && (isObject(next) || Array.isArray(next))) {
        node = next
        continue
      }
      if (i < path.length - 1 && next !== undefined && next !== null) {
        throw new TypeError(`${pointer(path.slice(0, i + 1))} is not an object`)
      }
      // Wrap the value in the objects still missing below this one.
      let wrapped = structuredClone(value)
      for (let j = path.length - 1; j > i; j--) wrapped = { [String(path[j])]: wrapped }
      node[k] = wrapped
      this.operations.push({
        op: 'add',
        path: pointer(path.slice(0, i + 1)),
        value: structuredClone(wrapped),
      })
      return
    }
  }

  /** Adds to the array at `path` (created if missing) at its start or its end. */
  insert(path: readonly Segment[], value: JsonValue, at: 'start' | 'end'): void {
    const current = this.get(path)
    if (current === undefined || current === null) {
      this.setKey(path.slice(0, -1), String(path[path.length - 1]), [value])
      return
    }
    if (!Array.isArray(current)) throw new TypeError(`${pointer(path)} is not an array`)
    if (at === 'start') current.unshift(structuredClone(value))
    else current.push(structuredClone(value))
    this.operations.push({ op: 'add', path: `${pointer(path)}/${at === 'start' ? '0' : '-'}`, value })
  }
}
