//! Secrets at rest. Provider tokens and webhook secrets are sealed with
//! XChaCha20-Poly1305 under a key derived from `WEARBRIDGE_SECRET_KEY`, with the owning
//! row's purpose as associated data so a sealed value cannot be moved to another row
//! kind. API keys are high-entropy random strings, so a plain SHA-256 is a sound
//! one-way hash for them (a slow password hash would only slow every request).

use std::path::Path;

use anyhow::{anyhow, Context};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The file `--dev` keeps its generated key in.
pub const DEV_KEY_FILE: &str = ".wearbridge-dev-key";

/// What a sealed value is for. The purpose is the seal's associated data: a value
/// sealed for one purpose cannot be opened as another (a provider token pasted into an
/// endpoint's secret column, say). The texts are stored in every sealed value's
/// authentication: never change one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A provider access token (connections).
    ProviderAccessToken,
    /// A provider refresh token (connections).
    ProviderRefreshToken,
    /// An endpoint's webhook signing secret.
    EndpointSecret,
    /// The OAuth `state` that carries a connect flow through the provider.
    OAuthState,
    /// The app's `redirect_url` carried through a `/v2` link (so the completion route
    /// redirects only where a link token said).
    LinkRedirect,
    /// A secret a provider returned when a push subscription was made (Polar's
    /// webhook signature key).
    PushSigningSecret,
}

impl Purpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Purpose::ProviderAccessToken => "provider_access_token",
            Purpose::ProviderRefreshToken => "provider_refresh_token",
            Purpose::EndpointSecret => "endpoint_secret",
            Purpose::OAuthState => "oauth_state",
            Purpose::LinkRedirect => "v2_link_redirect",
            Purpose::PushSigningSecret => "push_signing_secret",
        }
    }
}

#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// Derives stable secrets from the master key (see [`Sealer::derived_token`]).
    derive_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer from the configured master key (at least 32 characters).
    pub fn from_master_key(key: &str) -> anyhow::Result<Sealer> {
        anyhow::ensure!(
            key.len() >= 32,
            "WEARBRIDGE_SECRET_KEY must be at least 32 characters (try `openssl rand -base64 32`)"
        );
        let derived = Sha256::new()
            .chain_update(b"wearbridge seal v1\0")
            .chain_update(key.as_bytes())
            .finalize();
        let derive_key = Sha256::new()
            .chain_update(b"wearbridge derive v1\0")
            .chain_update(key.as_bytes())
            .finalize()
            .into();
        Ok(Sealer {
            cipher: XChaCha20Poly1305::new(&derived),
            derive_key,
        })
    }

    /// The configured key, or with `dev`, one generated once and kept in `dir`.
    pub fn load(secret_key: Option<&str>, dev: bool, dir: &Path) -> anyhow::Result<Sealer> {
        if let Some(key) = secret_key {
            return Sealer::from_master_key(key);
        }
        anyhow::ensure!(
            dev,
            "WEARBRIDGE_SECRET_KEY is not set: it encrypts tokens and secrets at rest. Set it (e.g. `openssl rand -base64 32`), or pass --dev to use a locally generated key"
        );
        let path = dir.join(DEV_KEY_FILE);
        let key = match std::fs::read_to_string(&path) {
            Ok(k) => k.trim().to_string(),
            Err(_) => {
                let k = random_token(32);
                write_private(&path, &k).with_context(|| format!("writing {}", path.display()))?;
                k
            }
        };
        tracing::warn!(
            path = %path.display(),
            "development mode: using a locally generated secret key; set WEARBRIDGE_SECRET_KEY in production"
        );
        Sealer::from_master_key(&key)
    }

    /// A secret token for `label`, the same in every process with this master key and
    /// across restarts, and unguessable without it: the verify token a provider's
    /// subscription handshake echoes, say.
    pub fn derived_token(&self, label: &str) -> String {
        let d = Sha256::new()
            .chain_update(self.derive_key)
            .chain_update(label.as_bytes())
            .finalize();
        d.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    pub fn seal(&self, purpose: Purpose, plaintext: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: purpose.as_str().as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1.{}", STANDARD.encode(out))
    }

    pub fn open(&self, purpose: Purpose, sealed: &str) -> anyhow::Result<String> {
        let b64 = sealed
            .strip_prefix("v1.")
            .ok_or_else(|| anyhow!("sealed value has an unknown format"))?;
        let raw = STANDARD.decode(b64).context("sealed value is not base64")?;
        anyhow::ensure!(raw.len() > 24, "sealed value is too short");
        let (nonce, ct) = raw.split_at(24);
        let pt = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: purpose.as_str().as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow!("cannot open sealed value: wrong WEARBRIDGE_SECRET_KEY or tampered data")
            })?;
        String::from_utf8(pt).context("sealed value is not UTF-8")
    }
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

/// `n` random bytes as URL-safe base64.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new API key, shown to its owner once: `wb_` + 32 random bytes.
pub fn new_api_key() -> String {
    format!("wb_{}", random_token(32))
}

/// What the database keeps of an API key.
pub fn hash_api_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new webhook signing secret: `whsec_` + base64 of 32 random bytes, as Svix makes them.
pub fn new_webhook_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// What [`validate_webhook_secret`] accepts, as a regular expression for the API
/// document: `whsec_` + canonical standard base64 (padded, unused bits zero) of 24 to 64
/// bytes, i.e. 8 to 21 full groups and a final group for 1 or 2 more bytes.
pub const WEBHOOK_SECRET_PATTERN: &str = "^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/][AQgw]==)?|(?:[A-Za-z0-9+/]{4}){8,20}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$";

/// Checks a caller-supplied webhook secret: `whsec_` + standard base64 of 24 to 64 bytes.
pub fn validate_webhook_secret(secret: &str) -> Result<(), String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("secret must start with `whsec_`")?;
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| "secret after `whsec_` must be standard base64".to_string())?;
    if !(24..=64).contains(&raw.len()) {
        return Err(format!(
            "secret must encode 24 to 64 bytes, got {}",
            raw.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_master_key("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn sealed_values_round_trip_and_hide_the_plaintext() {
        let s = sealer();
        let sealed = s.seal(Purpose::EndpointSecret, "whsec_abc");
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            s.seal(Purpose::EndpointSecret, "whsec_abc"),
            "nonce must be fresh"
        );
        assert_eq!(
            s.open(Purpose::EndpointSecret, &sealed).unwrap(),
            "whsec_abc"
        );
    }

    #[test]
    fn opening_with_another_purpose_or_key_fails() {
        let s = sealer();
        let sealed = s.seal(Purpose::EndpointSecret, "x");
        assert!(s.open(Purpose::ProviderAccessToken, &sealed).is_err());
        let other = Sealer::from_master_key("another key that is long enough!!").unwrap();
        assert!(other.open(Purpose::EndpointSecret, &sealed).is_err());
    }

    #[test]
    fn short_master_keys_are_refused() {
        assert!(Sealer::from_master_key("short").is_err());
        assert!(Sealer::load(None, false, Path::new(".")).is_err());
    }

    #[test]
    fn webhook_secrets_are_svix_shaped() {
        let s = new_webhook_secret();
        validate_webhook_secret(&s).unwrap();
        assert!(validate_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(validate_webhook_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(validate_webhook_secret("whsec_c2hvcnQ=").is_err());
        assert!(validate_webhook_secret("whsec_!!!").is_err());
    }

    #[test]
    fn api_key_hashes_are_stable_and_one_way() {
        let k = new_api_key();
        assert_eq!(hash_api_key(&k), hash_api_key(&k));
        assert_ne!(hash_api_key(&k), hash_api_key(&new_api_key()));
        assert_eq!(hash_api_key(&k).len(), 64);
        assert!(!hash_api_key(&k).contains(&k));
    }
}
