//! Outbound safety (SSRF). A webhook URL is chosen by a customer, so the gateway must not
//! become a way into its own network: `https` only unless allowed, and no loopback,
//! private, link-local, CGNAT, multicast or unspecified targets unless their CIDR is
//! allow-listed. The check runs twice: on the URL when an endpoint is saved, and on the
//! resolved addresses at connect time (through [`PolicyResolver`], reqwest's DNS hook),
//! so a name that resolves somewhere public at save time and somewhere private later
//! (DNS rebinding) is still refused. Redirects are never followed, so a public URL
//! cannot bounce a request inward either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    pub allow_http: bool,
    pub allowed_cidrs: Vec<IpNet>,
}

/// Why a URL or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("URL is not valid: {0}")]
    Invalid(String),
    #[error("URL must use https (plain http is not allowed on this gateway)")]
    NotHttps,
    #[error("URL scheme `{0}` is not allowed")]
    Scheme(String),
    #[error("{0} is a {1} address; webhooks may not target it unless its range is allow-listed")]
    Forbidden(IpAddr, &'static str),
}

/// The kind of non-public address `ip` is, or None for a public one.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let seg0 = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg0 & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if seg0 & 0xfe00 == 0xfc00 {
                Some("private")
            } else if seg0 == 0x64 && v6.segments()[1] == 0xff9b {
                // NAT64 embeds an IPv4 address; judge that one.
                let [_, _, _, _, _, _, a, b] = v6.segments();
                v4_kind(Ipv4Addr::new(
                    (a >> 8) as u8,
                    a as u8,
                    (b >> 8) as u8,
                    b as u8,
                ))
            } else {
                None
            }
        }
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("multicast or reserved")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (CGNAT)")
    } else {
        None
    }
}

impl UrlPolicy {
    /// Whether the gateway may connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        match non_public_kind(ip) {
            None => Ok(()),
            Some(_) if self.allowed_cidrs.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(kind) => Err(Refusal::Forbidden(ip, kind)),
        }
    }

    /// Checks a URL as written: scheme, and the host if it is an address or `localhost`.
    /// Names are checked again on every connection by [`PolicyResolver`].
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        let url = Url::parse(raw).map_err(|e| Refusal::Invalid(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(Refusal::NotHttps),
            other => return Err(Refusal::Scheme(other.to_string())),
        }
        match url.host() {
            None => return Err(Refusal::Invalid("URL has no host".into())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if d == "localhost" || d.ends_with(".localhost") {
                    self.check_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
                        .and(self.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))?;
                }
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Invalid(
                "credentials in the URL are not allowed; use custom headers".into(),
            ));
        }
        Ok(url)
    }
}

/// reqwest's DNS resolver with the policy applied to every answer: a name that resolves
/// to any forbidden address is refused as a whole.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    pub policy: Arc<UrlPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                policy.check_ip(a.ip()).map_err(|r| {
                    Box::new(BlockedAddress(host.clone(), r))
                        as Box<dyn std::error::Error + Send + Sync>
                })?;
            }
            let it: Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// The error a refused resolution carries, so the sender can tell it from a DNS failure.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolved to a refused address: {1}")]
pub struct BlockedAddress(pub String, pub Refusal);

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> UrlPolicy {
        UrlPolicy::default()
    }

    #[test]
    fn private_targets_are_refused_by_default() {
        let p = strict();
        for url in [
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fe80::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://0.0.0.0/x",
            "https://100.64.0.1/x",
            "https://localhost/x",
            "https://api.localhost/x",
        ] {
            assert!(
                matches!(p.check_url(url), Err(Refusal::Forbidden(..))),
                "{url} should be refused"
            );
        }
        assert!(p.check_url("https://example.com/hook").is_ok());
        assert!(p.check_url("https://93.184.216.34/hook").is_ok());
    }

    #[test]
    fn http_and_odd_schemes_need_permission() {
        assert_eq!(
            strict().check_url("http://example.com/"),
            Err(Refusal::NotHttps)
        );
        assert!(matches!(
            strict().check_url("ftp://example.com/"),
            Err(Refusal::Scheme(_))
        ));
        assert!(matches!(
            strict().check_url("not a url"),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            strict().check_url("https://u:p@example.com/"),
            Err(Refusal::Invalid(_))
        ));
        let p = UrlPolicy {
            allow_http: true,
            ..Default::default()
        };
        assert!(p.check_url("http://example.com/").is_ok());
    }

    #[test]
    fn allow_listed_ranges_pass() {
        let p = UrlPolicy {
            allow_http: true,
            allowed_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(p.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(
            p.check_url("http://10.0.0.1/hook").is_err(),
            "only the listed range is allowed"
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_inward() {
        let r = PolicyResolver {
            policy: Arc::new(strict()),
        };
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<BlockedAddress>().is_some(), "{err}");
        let open = PolicyResolver {
            policy: Arc::new(UrlPolicy {
                allow_http: true,
                allowed_cidrs: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            }),
        };
        assert!(open.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
