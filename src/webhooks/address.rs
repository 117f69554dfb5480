//! Where a webhook may be sent. A URL must be `http` or `https` with a host; unless
//! `webhooks.allow_private` is set, a host that resolves to an address of this machine or
//! of a private network (loopback, link-local, RFC 1918, unique-local, unspecified,
//! multicast) is refused, so a tenant cannot make the daemon call services behind its
//! firewall. The check runs when a subscription is made and again on every delivery, on
//! the very addresses the request connects to (the client resolves names through
//! [`GuardedResolver`]), so a name re-pointed after subscribing (DNS rebinding) gets
//! nowhere.

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};

/// Why `ip` may not be called with `allow_private = false`, if it may not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private (RFC 1918)")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || v4.octets()[0] == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                forbidden(IpAddr::V4(v4))
            } else if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_unicast_link_local() {
                Some("link-local")
            } else if v6.is_unique_local() {
                Some("private (unique local)")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// `url` parsed, if it is one a webhook may have (http or https, with a host).
pub fn parse(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{url:?} carries credentials; sign-in is the signature's job"));
    }
    Ok(parsed)
}

/// The addresses `url`'s host resolves to, or why it may not be called: a host that does
/// not resolve, or (unless `allow_private`) one with any forbidden address.
pub async fn check(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = match literal(url) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => resolve(host, port).await?,
    };
    if !allow_private {
        refuse_forbidden(host, &addrs)?;
    }
    Ok(addrs)
}

/// The address `url` names literally, if it does (no resolver is asked about those).
pub fn literal(url: &Url) -> Option<IpAddr> {
    url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Why a delivery to `url` may not be sent, when its host is a forbidden address
/// literally; names are checked as they are resolved, by [`GuardedResolver`].
pub fn refused_literal(url: &Url, allow_private: bool) -> Result<(), String> {
    match literal(url) {
        Some(ip) if !allow_private => refuse_forbidden(&ip.to_string(), &[SocketAddr::new(ip, 0)]),
        _ => Ok(()),
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("host {host:?} does not resolve: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("host {host:?} resolves to no address"));
    }
    Ok(found)
}

fn refuse_forbidden(host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
    match addrs.iter().find_map(|a| forbidden(a.ip()).map(|why| (a.ip(), why))) {
        Some((ip, why)) => Err(format!(
            "host {host:?} resolves to {ip}, a {why} address; webhooks are sent only to public addresses \
             unless `webhooks.allow_private` is set"
        )),
        None => Ok(()),
    }
}

/// The delivery client's resolver: resolves as the system does and, unless private
/// addresses are allowed, refuses a name with any forbidden address.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve(&host, 0).await?;
            if !allow_private {
                refuse_forbidden(&host, &addrs)?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_local_addresses_are_forbidden_public_ones_not() {
        for (a, why) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private (RFC 1918)"),
            ("172.16.0.1", "private (RFC 1918)"),
            ("192.168.1.1", "private (RFC 1918)"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private (unique local)"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
        ] {
            assert_eq!(forbidden(ip(a)), Some(why), "{a}");
        }
        for a in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert_eq!(forbidden(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_webhook_urls() {
        assert!(parse("https://hooks.example.com/erpsync").is_ok());
        assert!(parse("http://203.0.113.9:8080/x").is_ok());
        assert!(parse("ftp://example.com/").unwrap_err().contains("http(s)"));
        assert!(parse("not a url").unwrap_err().contains("not a URL"));
        assert!(parse("https://user:pw@example.com/").unwrap_err().contains("credentials"));
    }

    fn name_url() -> Url {
        parse("http://localhost:9/hook").unwrap()
    }

    #[tokio::test]
    async fn a_literal_or_a_name_of_a_local_address_is_refused_unless_allowed() {
        let literal = parse("http://127.0.0.1:9/hook").unwrap();
        assert!(check(&literal, false).await.unwrap_err().contains("loopback"));
        assert!(check(&literal, true).await.is_ok());
        assert!(refused_literal(&parse("http://[::1]:9/").unwrap(), false).unwrap_err().contains("loopback"));
        assert!(refused_literal(&name_url(), false).is_ok(), "names are left to the resolver");
        let name = name_url();
        assert!(check(&name, false).await.unwrap_err().contains("loopback"));
    }
}
