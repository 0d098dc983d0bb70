//! Where the server may connect on a tenant's behalf (their SMTP server, their webhooks):
//! public addresses only, unless the operator allows the private network for local development.
//! A tenant-supplied host pointing at loopback, a private range, link-local or a cloud metadata
//! address would otherwise let any organization probe the operator's internal network (SSRF).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Which addresses a connection may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    PublicOnly,
    /// `MERIDIAN_ALLOW_PRIVATE_NETWORK=true`: anything (development).
    Any,
}

impl Destination {
    pub fn from_allow_private(allow_private_network: bool) -> Destination {
        if allow_private_network {
            Destination::Any
        } else {
            Destination::PublicOnly
        }
    }
}

/// Whether `ip` is reachable only from inside a network (and so refused for tenants).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                // fc00::/7 unique local (including fd00:ec2::254, a metadata address)
                || (first & 0xfe00) == 0xfc00
                // fe80::/10 link-local
                || (first & 0xffc0) == 0xfe80
                // 64:ff9b::/96 NAT64 can reach private IPv4 space
                || (first == 0x0064 && ip.segments()[1] == 0xff9b)
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, including 169.254.169.254 (metadata)
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT, some cloud internals)
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 protocol assignments
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // 198.18.0.0/15 benchmarking
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4 reserved
        || a >= 240
}

/// Why a host may not be connected to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name did not resolve (a passing DNS failure, or a typo).
    #[error("{0}")]
    Lookup(String),
    /// It resolves inside the network: refused, whatever DNS says next time.
    #[error("{0}")]
    Internal(String),
}

/// Resolves `host` and returns an address the connection may use: the first one, after checking
/// that none of them is internal (a name with one public and one private address is refused, as
/// the client could be sent to either).
pub async fn resolve_checked(
    host: &str,
    port: u16,
    destination: Destination,
) -> Result<SocketAddr, ResolveError> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ResolveError::Lookup(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    let first = *addresses
        .first()
        .ok_or_else(|| ResolveError::Lookup(format!("{host} has no address")))?;
    if destination == Destination::PublicOnly
        && let Some(internal) = addresses.iter().find(|a| is_internal(a.ip()))
    {
        return Err(ResolveError::Internal(format!(
            "{host} resolves to {}, an internal address; connections to loopback, private, \
             link-local and metadata addresses are refused (an operator may allow them for local \
             development with MERIDIAN_ALLOW_PRIVATE_NETWORK)",
            internal.ip()
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = internal.parse().expect("an address");
            assert!(is_internal(ip), "{internal} should be internal");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "93.184.216.34",
        ] {
            let ip: IpAddr = public.parse().expect("an address");
            assert!(!is_internal(ip), "{public} should be public");
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        for host in ["127.0.0.1", "localhost"] {
            let refused = resolve_checked(host, 25, Destination::PublicOnly)
                .await
                .expect_err("refused");
            assert!(matches!(refused, ResolveError::Internal(_)), "{refused:?}");
            assert!(
                refused.to_string().contains("internal address"),
                "{refused}"
            );
        }
        let allowed = resolve_checked("127.0.0.1", 2525, Destination::Any)
            .await
            .expect("allowed");
        assert_eq!(
            allowed,
            "127.0.0.1:2525".parse::<SocketAddr>().expect("an address")
        );
        let ipv6: Ipv6Addr = "::1".parse().expect("an address");
        assert!(is_internal(IpAddr::V6(ipv6)));
    }
}
