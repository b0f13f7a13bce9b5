# Tokens only during office hours (UTC, Monday to Friday) and only from the
# internal networks; the "admin" scope only from the operations subnet.
package portcullis

import rego.v1

internal_networks := ["10.0.0.0/8", "127.0.0.0/8"]

operations_subnet := "10.20.0.0/16"

office_hours if {
	input.time.weekday in {"Mon", "Tue", "Wed", "Thu", "Fri"}
	input.time.hour >= 7
	input.time.hour < 19
}

from_internal if {
	some net in internal_networks
	net.cidr_contains(net, input.source_ip)
}

default decision := {"allow": false, "reason": "tokens are issued during office hours from internal networks only"}

decision := {"allow": true, "scopes": granted} if {
	office_hours
	from_internal
	granted := [s | some s in input.scopes; allowed_scope(s)]
}

allowed_scope(s) if s != "admin"

allowed_scope("admin") if net.cidr_contains(operations_subnet, input.source_ip)
