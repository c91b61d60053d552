# Scenario group "allow, deny and the default".
package svidecar.scenarios.basic

import data.svidecar.lib

order := ["agent-reads", "no-secrets", "agent-all-items"]

allows contains "agent-reads" if {
	input.subject.id == "spiffe://example.org/agent"
	agent_reads_resource
}

agent_reads_resource if lib.route(["GET"], "/v1/items/*")

agent_reads_resource if lib.named("llm.model", "gpt-4o")

denies contains "no-secrets" if {
	input.subject.trustDomain == "example.org"
	some p in ["/v1/items/secret", "/v1/admin/**"]
	lib.route(["*"], p)
}

allows contains "agent-all-items" if {
	input.subject.id == "spiffe://example.org/agent"
	lib.route(["*"], "/v1/admin/**")
}

decision := lib.decide(order, denies, allows, set(), "enforce")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
