//! Kubernetes service-link variables. For a Service named `portcullis`,
//! Kubernetes puts `PORTCULLIS_PORT`, `PORTCULLIS_PORT_8080_TCP…`,
//! `PORTCULLIS_SERVICE_HOST`, `PORTCULLIS_SERVICE_PORT…` into every pod of
//! the namespace. They share the settings' prefix but are no settings: the
//! environment provider skips exactly these shapes, and nothing else, so a
//! misspelt setting is still refused.

/// Whether `key` (a `PORTCULLIS_` variable without the prefix, in any case)
/// has the shape of a service-link variable: `PORT`,
/// `PORT_<n>_<TCP|UDP|SCTP>` with an optional `_PROTO`, `_PORT` or `_ADDR`,
/// `SERVICE_HOST`, `SERVICE_PORT` or `SERVICE_PORT_<NAME>`.
pub(super) fn is_service_link(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if matches!(key.as_str(), "port" | "service_host" | "service_port") {
        return true;
    }
    if let Some(name) = key.strip_prefix("service_port_") {
        return !name.is_empty();
    }
    let Some(rest) = key.strip_prefix("port_") else {
        return false;
    };
    let Some((number, rest)) = rest.split_once('_') else {
        return false;
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (protocol, suffix) = rest.split_once('_').unwrap_or((rest, ""));
    matches!(protocol, "tcp" | "udp" | "sctp") && matches!(suffix, "" | "proto" | "port" | "addr")
}

#[cfg(test)]
mod tests {
    use super::is_service_link;

    #[test]
    fn exactly_the_service_link_shapes_match() {
        for key in [
            "PORT",
            "PORT_8080_TCP",
            "PORT_8080_TCP_PROTO",
            "PORT_8080_TCP_PORT",
            "PORT_8080_TCP_ADDR",
            "PORT_53_UDP",
            "PORT_9_SCTP_ADDR",
            "SERVICE_HOST",
            "SERVICE_PORT",
            "SERVICE_PORT_HTTP",
            "SERVICE_PORT_ADMIN_API",
            "service_port",
        ] {
            assert!(is_service_link(key), "{key}");
        }
        for key in [
            "LISTNE",
            "LISTEN",
            "PORTS",
            "PORT_",
            "PORT_TCP",
            "PORT_8080",
            "PORT_8080_HTTP",
            "PORT_8080_TCP_HOST",
            "PORT_80A_TCP",
            "SERVICE_PORT_",
            "SERVICE_HOSTNAME",
            "SERVICE",
        ] {
            assert!(!is_service_link(key), "{key}");
        }
    }

    #[test]
    fn no_setting_has_a_service_link_shape() {
        for key in super::super::known_keys() {
            assert!(!is_service_link(key), "{key}");
        }
    }
}
