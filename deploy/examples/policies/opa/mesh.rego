# ../mesh.yaml as a Rego policy for `engine: opa` (package svidecar.authz),
# on svidecar_lib.rego: load both into OPA (`opa run --server mesh.rego
# svidecar_lib.rego`) and point the engine at package svidecar.authz. It
# decides like the built-in engine on mesh.yaml (test/opa/opa-example.test.ts
# compares them request by request).
package svidecar.authz

import data.svidecar.lib

# The file order of mesh.yaml: the first matching rule names the decision.
order := ["agents-use-mcp", "agents-use-gpt-4o", "partners-read-only", "no-admin-tools", "trial-no-delete"]

# Deny rules that are recorded, not enforced.
audit := {"trial-no-delete"}

allows contains "agents-use-mcp" if {
	lib.id_matches("spiffe://example.org/ns/agents/sa/*", input.subject)
	agents_use_mcp_resource
}

agents_use_mcp_resource if lib.route(["GET", "POST", "DELETE"], "/mcp")

agents_use_mcp_resource if lib.named("mcp.tool", "search_*")

agents_use_mcp_resource if lib.mcp_resource("file:///docs/**")

agents_use_mcp_resource if lib.named("mcp.prompt", "summarize")

allows contains "agents-use-gpt-4o" if {
	lib.id_matches("spiffe://example.org/ns/agents/**", input.subject)
	lib.named("llm.model", "gpt-4o*")
}

# when: time.getHours("UTC") >= 8 && time.getHours("UTC") < 18
allows contains "partners-read-only" if {
	input.subject.trustDomain == "partner.example"
	lib.route(["GET"], "/v1/catalog/**")
	[hour, _, _] := time.clock([time.parse_rfc3339_ns(input.context.time), "UTC"])
	hour >= 8
	hour < 18
}

denies contains "no-admin-tools" if {
	input.subject.trustDomain in {"example.org", "partner.example"}
	no_admin_tools_resource
}

no_admin_tools_resource if lib.named("mcp.tool", "admin_*")

no_admin_tools_resource if lib.route(["*"], "/admin/**")

denies contains "trial-no-delete" if {
	lib.id_matches("spiffe://example.org/ns/agents/sa/*", input.subject)
	lib.route(["DELETE"], "/mcp")
}

decision := lib.decide(order, denies, allows, audit, "enforce")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
