# Scenario group "an empty policy".
package svidecar.scenarios.empty

import data.svidecar.lib

decision := lib.decide([], set(), set(), set(), "enforce")

allow := decision.allow

rule_id := decision.rule_id

mode := decision.mode
