//! The client's address: the peer of the connection, or the one a trusted
//! proxy names (`ClientAddr`, put in the request by the composition root),
//! and the parsing of addresses and networks for allow-lists.

use axum::http::request::Parts;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client's address: as `ratelimit::limit_by_address` resolved it (the
/// TCP peer, or behind a trusted proxy the client it names), else the TCP
/// peer (`into_make_service_with_connect_info`).
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ClientAddr>()
        .map(|client| client.0)
        .or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip())
        })
}

/// The client address of a request, put into its extensions by the
/// per-address rate limit (`ratelimit.rs`), which resolves trusted proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// One entry of `--metrics-allow`: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a
/// single address.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is neither a CIDR (10.0.0.0/8) nor an IP address"))
}

/// A comma-separated allow-list, as in `LRS_METRICS_ALLOW`.
pub fn parse_allow_list(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_cidr)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(text: &str) -> Vec<IpNet> {
        parse_allow_list(text).unwrap()
    }

    #[test]
    fn allow_lists_parse_cidrs_and_addresses_and_reject_garbage() {
        assert_eq!(
            nets("10.0.0.0/8,::1, 192.168.1.7/24"),
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap(),
                "192.168.1.0/24".parse().unwrap()
            ]
        );
        assert!(nets("").is_empty());
        assert!(parse_allow_list("10.0.0.0/33").is_err());
        assert!(parse_allow_list("intranet").is_err());
    }
}
