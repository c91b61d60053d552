# Scenario group "audit mode per rule".
package svidecar.scenarios.audit_rules

import data.svidecar.lib

order := ["all-tools", "trial-deny-shell", "deny-rm"]

# trial-deny-shell has `mode: audit`; the policy enforces.
audit := {"trial-deny-shell"}

allows contains "all-tools" if {
	input.subject.trustDomain == "example.org"
	lib.named("mcp.tool", "*")
}

denies contains "trial-deny-shell" if {
	input.subject.trustDomain == "example.org"
	lib.named("mcp.tool", "shell")
}

denies contains "deny-rm" if {
	input.subject.trustDomain == "example.org"
	lib.named("mcp.tool", "rm")
}

decision := lib.decide(order, denies, allows, audit, "enforce")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
