# Scenario group "audit mode for the whole policy".
package svidecar.scenarios.audit_policy

import data.svidecar.lib

order := ["reads", "no-admin", "no-delete-enforced"]

# The policy is in audit mode; no-delete-enforced alone says `mode: enforce`.
audit := {"reads", "no-admin"}

allows contains "reads" if {
	input.subject.trustDomain == "example.org"
	lib.route(["GET"], "/**")
}

denies contains "no-admin" if {
	input.subject.trustDomain == "example.org"
	lib.route(["*"], "/admin/**")
}

denies contains "no-delete-enforced" if {
	input.subject.trustDomain == "example.org"
	lib.route(["DELETE"], "/**")
}

decision := lib.decide(order, denies, allows, audit, "audit")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
