/** The Grafana dashboard's queries, read from deploy/grafana, and the same with its variables filled in. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from '../harness/image.ts'

export const DASHBOARD_PATH = join(REPO_ROOT, 'deploy/grafana/svidecar.json')

export interface Panel {
  id: number
  type: string
  title: string
  datasource?: { type: string; uid: string }
  targets?: Array<{ refId: string; expr: string; datasource?: { uid: string } }>
  panels?: Panel[]
  gridPos: { h: number; w: number; x: number; y: number }
}

export interface Dashboard {
  uid: string
  title: string
  panels: Panel[]
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> }
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])])
}

export function queries(d: Dashboard): Array<{ panel: string; expr: string }> {
  return allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })))
}

/** What Grafana would send for "All" on every variable and a 1-minute rate interval. */
export function filled(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '1m')
    .replace(/\$(job|instance)\b/g, '.*')
}
