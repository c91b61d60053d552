// The policy scenario suite, shared with the engines whose suites live outside this package (OPA in test/opa/).
export { DEFAULT_TIME, SCENARIOS, type ScenarioCase, type ScenarioGroup } from '../policy/scenarios.ts'
