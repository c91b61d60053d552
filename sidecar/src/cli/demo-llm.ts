/**
 * The demo agent's LLM calls through its sidecar, with no key: an allowed
 * model streamed, a denied one, the model list it is shown, then a long
 * answer its token budget cuts mid-stream, and a call the spent budget
 * refuses. Each step prints what happened and the audit lines it produced.
 */
import { type DemoAudit, decisionOn, usageLine } from './demo-audit.ts'

type Log = (line: string) => void

interface StreamOutcome {
  status: number
  text: string
  events: number
  error?: { code?: string; message?: string }
}

export async function llmCalls(llm: string, audit: DemoAudit, log: Log): Promise<void> {
  const chat = (model: string, stream: boolean, content: string, maxTokens?: number) =>
    fetch(`${llm}/v1/chat/completions`, {
      method: 'POST',
      // What an agent with a made-up key sends: the sidecar drops it and injects the real one.
      headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-real-key' },
      body: JSON.stringify({
        model,
        stream,
        ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
        messages: [{ role: 'user', content }],
      }),
    })
  const flush = (until: Parameters<DemoAudit['flush']>[1]) => audit.flush(log, until)
  try {
    log('LLM: the agent holds no key; its sidecar decides the model and injects the key only it can read')
    const hello = await readStream(await chat('demo-small', true, 'Say hello.'))
    log(
      `LLM demo-small (allowed, streamed): ${hello.status}, ${hello.events} events: "${hello.text}" (the model server accepts only the key the sidecar injected)`,
    )
    await flush(usageLine)

    const denied = await chat('demo-large', false, 'Say hello.')
    const body = (await denied.json()) as { error?: { type?: string; code?: string; message?: string } }
    log(
      `LLM demo-large (denied): ${denied.status} in OpenAI's error shape, type ${body.error?.type}, code ${body.error?.code}: ${body.error?.message}`,
    )
    await flush(decisionOn('demo-large'))

    const list = (await (await fetch(`${llm}/v1/models`)).json()) as { data?: { id: string }[] }
    log(
      `LLM model list as the agent sees it: ${(list.data ?? []).map((m) => m.id).join(', ')} (the server lists demo-large too; left out, its denial audited)`,
    )
    await flush(decisionOn('demo-large'))

    const long = await readStream(await chat('demo-small', true, 'Tell me a long story.', 500))
    log(
      long.error === undefined
        ? `LLM demo-small long answer: ${long.status}, not cut (${long.events} events)`
        : `LLM demo-small long answer: ${long.status}, the budget ran out mid-stream: after ${long.events} events the stream ended with the API's error frame ${long.error.code}: ${long.error.message}`,
    )
    await flush(usageLine)

    const refused = await chat('demo-small', true, 'Say hello.')
    const refusal = (await refused.json()) as { error?: { code?: string } }
    log(
      `LLM demo-small again: ${refused.status} ${refusal.error?.code}, retry-after ${refused.headers.get('retry-after')} s (when the UTC day's budget resets); nothing reached the model`,
    )
    await flush(usageLine)
  } catch (err) {
    log(`LLM calls failed: ${(err as Error).message}`)
  }
}

/** Reads an OpenAI-style chat stream: the text, the number of chunks, and an error chunk if one ended it. */
async function readStream(res: Response): Promise<StreamOutcome> {
  if (!res.ok || res.body === null) {
    const body = (await res.json()) as { error?: { code?: string; message?: string } }
    return {
      status: res.status,
      text: '',
      events: 0,
      ...(body.error === undefined ? {} : { error: body.error }),
    }
  }
  const outcome: StreamOutcome = { status: res.status, text: '', events: 0 }
  let buffered = ''
  const decoder = new TextDecoder()
  for await (const bytes of res.body) {
    buffered += decoder.decode(bytes, { stream: true })
    let end = buffered.indexOf('\n\n')
    while (end !== -1) {
      const data = buffered.slice(0, end).replace(/^data: /, '')
      buffered = buffered.slice(end + 2)
      end = buffered.indexOf('\n\n')
      if (data === '[DONE]') continue
      const chunk = JSON.parse(data) as {
        choices?: { delta?: { content?: string } }[]
        error?: { code?: string; message?: string }
      }
      if (chunk.error !== undefined) {
        outcome.error = chunk.error
        continue
      }
      outcome.events++
      outcome.text += chunk.choices?.[0]?.delta?.content ?? ''
    }
  }
  return outcome
}
