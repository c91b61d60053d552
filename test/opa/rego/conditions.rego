# Scenario group "conditions". The built-in policy's `when:` clauses are CEL;
# here each is rewritten by hand in Rego, next to the CEL it stands for.
package svidecar.scenarios.conditions

import data.svidecar.lib

order := ["office-hours", "prod-header", "token-budget", "peer-check", "inbound-only"]

# when: time.getHours("UTC") >= 8 && time.getHours("UTC") < 18
allows contains "office-hours" if {
	input.subject.trustDomain == "example.org"
	lib.named("llm.model", "*")
	[hour, _, _] := time.clock([time.parse_rfc3339_ns(input.context.time), "UTC"])
	hour >= 8
	hour < 18
}

# when: request.headers["x-env"] == "prod" && subject.segments[0] == "deployer"
# (a missing header is a CEL error, which never allows; in Rego it is undefined, which does not either)
allows contains "prod-header" if {
	input.subject.id == "spiffe://example.org/deployer"
	lib.named("mcp.tool", "deploy")
	input.context.headers["x-env"] == "prod"
	input.subject.segments[0] == "deployer"
}

# when: attributes.maxTokens > 4000
denies contains "token-budget" if {
	token_budget_subject
	input.context.attributes.maxTokens > 4000
}

# CEL fails on a missing (or non-numeric) maxTokens, and a deny whose
# condition fails counts as matching. Rego would just be undefined, so this
# clause states the built-in rule explicitly.
denies contains "token-budget" if {
	token_budget_subject
	not max_tokens_is_number
}

max_tokens_is_number if is_number(input.context.attributes.maxTokens)

token_budget_subject if {
	input.subject.trustDomain == "example.org"
	lib.named("llm.model", "*")
}

# when: has(peer.id) && peer.trustDomain == "example.org"
allows contains "peer-check" if {
	input.subject.id == "spiffe://example.org/caller"
	lib.named("mcp.tool", "peer_only")
	input.peer.trustDomain == "example.org"
}

# when: request.direction == "inbound"
allows contains "inbound-only" if {
	input.subject.id == "spiffe://example.org/caller"
	lib.named("mcp.prompt", "*")
	input.context.direction == "inbound"
}

decision := lib.decide(order, denies, allows, set(), "enforce")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
