/**
 * The local OpenAI-compatible model server of the LLM benchmark, as its own
 * process (so its CPU is not the load generator's): prints its port, then
 * serves until killed. argv[2]: JSON options of `startLlmUpstream`.
 */
import { startLlmUpstream } from '../sidecar/test/helpers/llm-upstream.ts'

const upstream = await startLlmUpstream(JSON.parse(process.argv[2] ?? '{}'))
process.stdout.write(`${upstream.port}\n`)
