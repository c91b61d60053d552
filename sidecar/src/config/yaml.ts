/**
 * YAML text parsed the one way every svidecar file is (the config, the
 * policy): unique keys, strict, no pretty-printed errors, and each syntax
 * error as a `(yaml)` issue at its line and column.
 */
import { type Document, LineCounter, parseDocument } from 'yaml'

export interface YamlSyntaxIssue {
  path: '(yaml)'
  line?: number
  column?: number
  message: string
}

export interface ParsedYaml {
  doc: Document
  lineCounter: LineCounter
  /** Empty when the text is well-formed YAML. */
  syntaxIssues: YamlSyntaxIssue[]
}

export function parseYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true })
  const syntaxIssues = doc.errors.map((e): YamlSyntaxIssue => {
    // linePos is filled only with prettyErrors, which also rewrites the message; count lines ourselves.
    const pos = e.linePos?.[0] ?? (e.pos ? lineCounter.linePos(e.pos[0]) : undefined)
    return {
      path: '(yaml)',
      ...(pos ? { line: pos.line, column: pos.col } : {}),
      message: e.message.split('\n')[0] ?? e.message,
    }
  })
  return { doc, lineCounter, syntaxIssues }
}
