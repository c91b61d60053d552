/**
 * Cedar policies written by hand for the scenario groups the translator
 * refuses (CEL conditions). Each says the same as its built-in rule; the
 * comment above each policy gives the CEL it replaces and why the two agree,
 * also when a condition fails to evaluate.
 */
export const HAND_WRITTEN_CEDAR: Record<string, string> = {
  conditions: `
// CEL: time.getHours("UTC") >= 8 && time.getHours("UTC") < 18
// toTime() is the time of day in UTC as a duration: hour >= 8 <=> toTime >= 8h, hour < 18 <=> toTime < 18h.
@id("office-hours")
permit (principal, action == Spiffe::Action::"llm.model", resource is Spiffe::Model)
when {
  principal.trustDomain == "example.org" &&
  context.time.toTime() >= duration("8h") && context.time.toTime() < duration("18h")
};

// CEL: request.headers["x-env"] == "prod" && subject.segments[0] == "deployer"
// Both error on a missing header (a CEL map without the key; a Cedar record without the attribute).
@id("prod-header")
permit (principal == Spiffe::Workload::"spiffe://example.org/deployer", action == Spiffe::Action::"mcp.tool", resource is Spiffe::Tool)
when { resource.name == "deploy" && context.headers["x-env"] == "prod" && principal.segments["0"] == "deployer" };

// CEL: attributes.maxTokens > 4000 (an error when lenses set no maxTokens, in both languages).
@id("token-budget")
forbid (principal, action == Spiffe::Action::"llm.model", resource is Spiffe::Model)
when { principal.trustDomain == "example.org" && context.attributes.maxTokens > 4000 };

// CEL: has(peer.id) && peer.trustDomain == "example.org"
@id("peer-check")
permit (principal == Spiffe::Workload::"spiffe://example.org/caller", action == Spiffe::Action::"mcp.tool", resource is Spiffe::Tool)
when { resource.name == "peer_only" && context has peer && context.peer.trustDomain == "example.org" };

// CEL: request.direction == "inbound"
@id("inbound-only")
permit (principal == Spiffe::Workload::"spiffe://example.org/caller", action == Spiffe::Action::"mcp.prompt", resource is Spiffe::Prompt)
when { context.direction == "inbound" };
`,
}
