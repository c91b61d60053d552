// The public API is what etc/*.api.md records: declarations built from src are run
// through API Extractor, and any difference from the committed reports fails here.
// After a deliberate change: `npm run api -w workload-api-client`, then commit etc/.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor'
import t from 'tap'

const pkg = join(import.meta.dirname, '..')
const bin = join(pkg, '..', 'node_modules', '.bin')

const ENTRIES = [
  { config: 'api-extractor.json', entry: 'index.d.ts', report: 'etc/workload-api-client.api.md' },
  { config: 'api-extractor.wire.json', entry: 'wire.d.ts', report: 'etc/workload-api-client-wire.api.md' },
  {
    config: 'api-extractor.undici.json',
    entry: 'undici.d.ts',
    report: 'etc/workload-api-client-undici.api.md',
  },
]

t.test('the public API matches the committed API reports', async (t) => {
  // Inside the repository (tap's fixtures), so the declarations resolve @grpc/grpc-js and @bufbuild/protobuf.
  const out = t.testdir()
  await promisify(execFile)(join(bin, 'tsc'), [
    '-p',
    join(pkg, 'tsconfig.json'),
    '--outDir',
    out,
    '--tsBuildInfoFile',
    join(out, '.tsbuildinfo'),
    '--emitDeclarationOnly',
    '--declarationMap',
    'false',
  ])
  for (const { config, entry, report } of ENTRIES) {
    const configPath = join(pkg, config)
    const configObject = ExtractorConfig.loadFile(configPath)
    configObject.mainEntryPointFilePath = join(out, entry)
    if (configObject.apiReport !== undefined) configObject.apiReport.reportTempFolder = join(out, 'report')
    configObject.docModel = { enabled: false }
    const prepared = ExtractorConfig.prepare({
      configObject,
      configObjectFullPath: configPath,
      packageJsonFullPath: join(pkg, 'package.json'),
    })
    const messages: string[] = []
    const result = Extractor.invoke(prepared, {
      localBuild: false,
      messageCallback: (m) => {
        if (m.logLevel === 'error' || m.logLevel === 'warning')
          messages.push(m.formatMessageWithLocation(pkg))
        m.handled = true
      },
    })
    t.equal(result.apiReportChanged, false, `${report} is current (npm run api -w workload-api-client)`, {
      messages,
    })
    t.equal(result.errorCount + result.warningCount, 0, `${entry}: no API Extractor findings`, { messages })
  }
})
