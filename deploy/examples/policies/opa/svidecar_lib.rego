# Helpers for Rego policies that decide for svidecar (engine: opa), with the
# built-in engine's matching semantics, so a policy written with them decides
# like the same rules in the built-in format:
#
#   - SPIFFE ID patterns, route paths and resource URIs match whole segments:
#     "*" is one non-empty segment, "**" any number (also none), and "*"
#     inside a segment (*.json) any characters but "/";
#   - name globs (models, tools, prompts): "*" is any run of characters,
#     everything else literal and case-sensitive;
#   - decide(): deny overrides allow, the first rule in `order` names the
#     decision, an audit-mode deny lets an allowed request through as
#     {"allow": false, "mode": "audit"}, and no match is the default deny.
#
# The sidecar sends paths and URIs already split into segments (with
# percent-escapes of unreserved characters decoded), so patterns here are
# compared with parsed structure, never with raw strings. Patterns are
# written without percent-escapes.
package svidecar.lib

# Escapes the regular-expression metacharacters of a literal.
quote(s) := regex.replace(s, `[.*+?^${}()|\[\]\\]`, `\${0}`)

# One pattern segment as a regular expression over "/"-prefixed segments.
piece("**") := "(?:/[^/]*)*"

piece("*") := "/[^/]+"

piece(p) := concat("", ["/", concat("[^/]*", [quote(x) | some x in split(p, "*")])]) if {
	p != "*"
	p != "**"
}

segments_match(pattern, segments) if {
	re := concat("", ["^", concat("", [piece(p) | some p in pattern]), "$"])
	regex.match(re, concat("", [concat("", ["/", s]) | some s in segments]))
}

# A SPIFFE ID (the input's subject or peer) against an exact ID or a pattern.
id_matches(pattern, id) if {
	not contains(pattern, "*")
	pattern == id.id
}

id_matches(pattern, id) if {
	contains(pattern, "*")
	parts := split(trim_prefix(pattern, "spiffe://"), "/")
	parts[0] == id.trustDomain
	segments_match(array.slice(parts, 1, count(parts)), id.segments)
}

# A route pattern ("/v1/items/*") against the request's path segments.
path_matches(pattern, segments) if segments_match(split(trim_prefix(pattern, "/"), "/"), segments)

# A URI pattern ("file:///repo/**") against the resource's URI segments.
uri_matches(pattern, segments) if segments_match(split(pattern, "/"), segments)

name_matches(pattern, name) if {
	re := concat("", ["(?s)^", concat(".*", [quote(x) | some x in split(pattern, "*")]), "$"])
	regex.match(re, name)
}

route(methods, pattern) if {
	input.action == "http.route"
	some m in methods
	m in {"*", input.resource.method}
	path_matches(pattern, input.resource.segments)
}

named(kind, pattern) if {
	input.action == kind
	name_matches(pattern, input.resource.name)
}

mcp_resource(pattern) if {
	input.action == "mcp.resource"
	uri_matches(pattern, input.resource.segments)
}

first(order, ids) := [id | some id in order; id in ids][0]

# The decision document from the ids of the matching deny and allow rules.
# `audit` holds the ids of deny rules that are not enforced; `mode` is the
# policy's own ("enforce" or "audit"), which governs the default deny.
decide(order, denies, allows, audit, mode) := {"allow": false, "rule_id": id} if {
	id := first(order, {d | some d in denies; not d in audit})
} else := {"allow": false, "rule_id": id, "mode": "audit"} if {
	first(order, allows)
	id := first(order, denies)
} else := {"allow": true, "rule_id": id} if {
	id := first(order, allows)
} else := {"allow": false, "rule_id": id, "mode": "audit"} if {
	# Nothing allows it in an audit policy: the audited deny rule that matched names the decision.
	mode == "audit"
	id := first(order, denies)
} else := {"allow": false, "mode": "audit"} if {
	mode == "audit"
} else := {"allow": false}
