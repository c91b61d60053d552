# Scenario group "subject patterns, trust domains and lists".
package svidecar.scenarios.subjects

import data.svidecar.lib

order := ["agents-one-level", "agents-any-depth", "partner-domain", "a-list"]

allows contains "agents-one-level" if {
	lib.id_matches("spiffe://example.org/agents/*", input.subject)
	lib.named("mcp.tool", "search")
}

allows contains "agents-any-depth" if {
	lib.id_matches("spiffe://example.org/team/**", input.subject)
	lib.named("mcp.tool", "fetch")
}

allows contains "partner-domain" if {
	input.subject.trustDomain == "partner.org"
	lib.named("mcp.prompt", "summarize")
}

allows contains "a-list" if {
	some s in [
		"spiffe://example.org/billing",
		"spiffe://other.org/billing",
		"spiffe://example.org/ns/*/sa/reporter",
	]
	lib.id_matches(s, input.subject)
	lib.mcp_resource("db://reports/*")
}

decision := lib.decide(order, set(), allows, set(), "enforce")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
