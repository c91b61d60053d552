/**
 * How X509Source and JwtSource get their Workload API client. The options
 * type is public (both sources' options extend it); `sourceClient` is not.
 */

import { WorkloadApiClient } from './client.ts'
import type { BackoffStrategy } from './internal/backoff.ts'

/** What a source needs to reach the Workload API: a client of the caller's, or how to make its own. */
export interface SourceClientOptions {
  /** A client to use (not closed by the source); otherwise one is created from address/env/backoff. */
  client?: WorkloadApiClient
  address?: string
  env?: NodeJS.ProcessEnv
  backoff?: () => BackoffStrategy
}

/** The client a source uses, and whether the source made it (and so closes it). */
export function sourceClient(options: SourceClientOptions): { client: WorkloadApiClient; owned: boolean } {
  if (options.client !== undefined) return { client: options.client, owned: false }
  return {
    client: new WorkloadApiClient({
      ...(options.address === undefined ? {} : { address: options.address }),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    }),
    owned: true,
  }
}
