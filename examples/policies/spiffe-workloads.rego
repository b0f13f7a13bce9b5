# Mesh workloads: tokens only for clients that presented a certificate with a
# SPIFFE ID of our trust domain, and that ID in a "spiffe_id" claim (add
# "spiffe_id" to policy_claims). Secret-based clients are refused.
package portcullis

import rego.v1

trust_domain := "spiffe://example.org/"

default decision := {"allow": false, "reason": "tokens are issued to workloads with an example.org SPIFFE ID only"}

decision := {"allow": true, "claims": {"spiffe_id": id}} if {
	some id in input.certificate.san.uri
	startswith(id, trust_domain)
}
