# Which scopes make sense for which audience: a token for the billing API
# carries only billing scopes, a token for the inventory API only inventory
# scopes. Adds the client's team (from its name) as a claim.
# Needs: policy_claims = ["team"]
package portcullis

import rego.v1

matrix := {
	"https://billing.example.com": {"billing:read", "billing:write"},
	"https://inventory.example.com": {"inventory:read", "inventory:write"},
}

permitted contains s if {
	some aud in input.audiences
	some s in input.scopes
	s in matrix[aud]
}

default decision := {"allow": false, "reason": "no requested scope is valid for the requested audience"}

decision := {"allow": true, "scopes": [s | some s in permitted], "claims": {"team": team}} if {
	count(permitted) > 0
	team := object.get(input.client, "client_name", "unknown")
}
