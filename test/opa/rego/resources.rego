# Scenario group "resource patterns".
package svidecar.scenarios.resources

import data.svidecar.lib

order := ["routes", "tools"]

allows contains "routes" if {
	input.subject.id == "spiffe://example.org/app"
	routes_resource
}

routes_resource if lib.route(["GET", "HEAD"], "/files/*.json")

routes_resource if lib.route(["*"], "/api/**")

routes_resource if lib.route(["GET"], "/")

allows contains "tools" if {
	input.subject.id == "spiffe://example.org/app"
	tools_resource
}

tools_resource if lib.named("mcp.tool", "github_*")

tools_resource if lib.named("llm.model", "claude-*-sonnet*")

tools_resource if lib.mcp_resource("file:///repo/**")

decision := lib.decide(order, set(), allows, set(), "enforce")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
