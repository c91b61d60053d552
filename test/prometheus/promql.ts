/**
 * The metric names a PromQL expression reads, found by a small scanner
 * rather than a full parser: it drops strings, label matchers, durations,
 * grouping clauses (`by (le)`), Grafana variables and function names, and
 * what is left that looks like an identifier is a metric name. Enough to
 * check dashboards and alerts against the sidecar's registry.
 */
import { createMetrics } from 'svidecar'

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
])

export function metricNames(expr: string): Set<string> {
  const text = expr
    // Grafana variables: ${var}, ${var:fmt}, $var, [[var]].
    .replace(/\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]/g, ' ')
    // Strings (matcher values, label_replace arguments), escapes included.
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    // Label matchers, range and subquery selectors.
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // Label lists of grouping and matching clauses.
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // Comments.
    .replace(/#.*$/gm, ' ')
  const names = new Set<string>()
  for (const m of text.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m
    if (call !== undefined || KEYWORDS.has((name as string).toLowerCase())) continue
    names.add(name as string)
  }
  return names
}

/**
 * Names the alerts or the dashboard may reference before createMetrics() registers them (work landing in
 * parts). Empty: every name they use exists.
 */
export const PENDING_METRICS: ReadonlySet<string> = new Set<string>()

/** Series names Prometheus itself adds to every scrape and rule evaluation. */
const PROMETHEUS_OWN = [
  'up',
  'scrape_duration_seconds',
  'scrape_samples_scraped',
  'ALERTS',
  'ALERTS_FOR_STATE',
]

/** Every series name the sidecar's registry exposes (histogram families by their suffixed series). */
export async function sidecarSeriesNames(): Promise<Set<string>> {
  const metrics = createMetrics(undefined, { workloadApiReachable: () => true })
  const names = new Set<string>(PROMETHEUS_OWN)
  for (const family of await metrics.registry.getMetricsAsJSON()) {
    const { name, type } = family as unknown as { name: string; type: string }
    if (type === 'histogram' || type === 'summary') {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`)
      if (type === 'summary') names.add(name)
    } else names.add(name)
  }
  return names
}
