//! The Link page: what an end user sees when a link token names no provider. Plain
//! server-rendered HTML (no scripts), one column that fits a phone, real buttons and
//! links (keyboard reachable, visible focus), colours that pass WCAG AA contrast, and
//! every value escaped. The routes and the flow live in `connect.rs`; this file only
//! draws.

use crate::providers::Provider;
use crate::states::ConnectionStatus;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// One provider's row: its state for this user, if connected before.
pub struct Row<'a> {
    pub provider: &'a Provider,
    /// `connected`, `error` or None.
    pub status: Option<ConnectionStatus>,
    /// Where its Connect button goes (None once the link is spent).
    pub connect_href: Option<String>,
}

/// What the page says above the list.
pub enum Banner {
    None,
    Success {
        provider: String,
        continue_href: String,
    },
    Error {
        provider: Option<String>,
        error_type: String,
        back_href: String,
    },
    Spent {
        back_href: String,
    },
    Expired {
        back_href: String,
    },
}

fn error_text(error_type: &str) -> &'static str {
    match error_type {
        "access_denied" => "You did not allow access. You can try again, or go back to the app.",
        "token_exchange_failed" => {
            "The provider did not complete the connection. Please try again."
        }
        "provider_error" => "The provider reported an error. Please try again.",
        _ => "Something went wrong while connecting. Please try again.",
    }
}

fn resources(p: &Provider) -> String {
    let names: Vec<String> = p
        .manifest
        .resources
        .iter()
        .map(|r| match r.name.as_str() {
            "heartrate" => "heart rate".to_string(),
            "hrv" => "HRV".to_string(),
            "calories_active" => "active calories".to_string(),
            other => other.replace('_', " "),
        })
        .collect();
    names.join(", ")
}

pub fn render(rows: &[Row], banner: &Banner) -> String {
    let name_of = |id: &str| {
        rows.iter()
            .find(|r| r.provider.id() == id)
            .map(|r| r.provider.manifest.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let banner_html = match banner {
        Banner::None => String::new(),
        Banner::Success {
            provider,
            continue_href,
        } => format!(
            r#"<div class="banner ok" role="status"><p><strong>{} is connected.</strong> Your data will start syncing in the background.</p><a class="button primary" href="{}">Continue</a></div>"#,
            escape(&name_of(provider)),
            escape(continue_href)
        ),
        Banner::Error {
            provider,
            error_type,
            back_href,
        } => format!(
            r#"<div class="banner err" role="alert"><p><strong>{}</strong> {}</p><a class="button" href="{}">Back to the app</a></div>"#,
            provider
                .as_deref()
                .map(|p| format!("{} was not connected.", escape(&name_of(p))))
                .unwrap_or_else(|| "Not connected.".into()),
            error_text(error_type),
            escape(back_href)
        ),
        Banner::Spent { back_href } => format!(
            r#"<div class="banner err" role="alert"><p><strong>This link has already been used.</strong> Ask the app for a new one to connect another device.</p><a class="button" href="{}">Back to the app</a></div>"#,
            escape(back_href)
        ),
        Banner::Expired { back_href } => format!(
            r#"<div class="banner err" role="alert"><p><strong>This link has expired.</strong> Ask the app for a new one.</p><a class="button" href="{}">Back to the app</a></div>"#,
            escape(back_href)
        ),
    };
    let items: String = rows
        .iter()
        .map(|r| {
            let name = escape(&r.provider.manifest.name);
            let initial = name.chars().next().unwrap_or('?');
            let badge = match r.status {
                Some(ConnectionStatus::Connected) => r#"<span class="badge on">Connected</span>"#,
                Some(ConnectionStatus::Error) => {
                    r#"<span class="badge off">Needs reconnecting</span>"#
                }
                Some(ConnectionStatus::Deregistered) | None => "",
            };
            let action = match (&r.connect_href, r.status) {
                (Some(href), Some(_)) => format!(r#"<a class="button" href="{}" aria-label="Reconnect {name}">Reconnect</a>"#, escape(href)),
                (Some(href), None) => format!(r#"<a class="button primary" href="{}" aria-label="Connect {name}">Connect</a>"#, escape(href)),
                (None, _) => String::new(),
            };
            format!(
                r#"<li class="provider" data-provider="{id}"><span class="avatar" aria-hidden="true">{initial}</span><div class="info"><h2>{name}</h2><p>Shares {res}</p>{badge}</div>{action}</li>"#,
                id = escape(r.provider.id()),
                res = escape(&resources(r.provider)),
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connect a device</title>
<style>
:root {{ color-scheme: light; }}
body {{ font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f3f4f6; color: #111827; }}
main {{ max-width: 32rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }}
h1 {{ font-size: 1.5rem; margin: .5rem 0 .25rem; }}
.lead {{ color: #374151; margin: 0 0 1.25rem; }}
ul {{ list-style: none; padding: 0; margin: 0; display: grid; gap: .75rem; }}
.provider {{ display: flex; align-items: center; gap: .9rem; background: #fff; border-radius: 12px; padding: .9rem 1rem; box-shadow: 0 1px 2px rgb(0 0 0 / .08); }}
.avatar {{ flex: none; width: 2.5rem; height: 2.5rem; border-radius: 50%; background: #1e3a8a; color: #fff; display: grid; place-items: center; font-weight: 700; }}
.info {{ flex: 1; min-width: 0; }}
.info h2 {{ font-size: 1.05rem; margin: 0; }}
.info p {{ margin: 0; color: #4b5563; font-size: .9rem; }}
.badge {{ display: inline-block; margin-top: .25rem; font-size: .8rem; font-weight: 600; padding: .05rem .5rem; border-radius: 999px; }}
.badge.on {{ background: #dcfce7; color: #14532d; }}
.badge.off {{ background: #fee2e2; color: #7f1d1d; }}
.button {{ display: inline-block; text-decoration: none; font-weight: 600; padding: .55rem 1rem; border-radius: 8px; border: 1px solid #1d4ed8; color: #1d4ed8; background: #fff; white-space: nowrap; }}
.button.primary {{ background: #1d4ed8; color: #fff; }}
.button:focus-visible {{ outline: 3px solid #f59e0b; outline-offset: 2px; }}
.banner {{ border-radius: 12px; padding: 1rem; margin: 0 0 1.25rem; }}
.banner p {{ margin: 0 0 .75rem; }}
.banner.ok {{ background: #ecfdf5; border: 1px solid #059669; }}
.banner.err {{ background: #fef2f2; border: 1px solid #dc2626; }}
footer {{ margin-top: 2rem; color: #4b5563; font-size: .85rem; }}
</style></head>
<body><main>
<h1>Connect a device</h1>
<p class="lead">Choose the service whose data you want to share. You sign in with the service itself; this app never sees your password.</p>
{banner_html}
<ul aria-label="Providers">{items}</ul>
<footer>Powered by Wearbridge. You can disconnect a service at any time from the app.</footer>
</main></body></html>"#
    )
}
