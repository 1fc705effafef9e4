//! Standard Webhooks signing. The signature is computed by the `svix` crate's
//! [`svix::webhooks::Webhook::sign`], so it is by construction what every Svix and
//! Standard Webhooks library verifies: `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`,
//! one per valid secret, space-separated (rotation signs with old and new).

use svix::webhooks::Webhook;

/// The secrets an endpoint currently signs with, ready to use.
#[derive(Clone)]
pub struct Signer {
    keys: std::sync::Arc<[Webhook]>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} keys)", self.keys.len())
    }
}

impl Signer {
    /// From `whsec_…` secrets, newest first.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Signer> {
        let keys = secrets
            .into_iter()
            .map(|s| Webhook::new(s).map_err(|e| anyhow::anyhow!("invalid webhook secret: {e:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!keys.is_empty(), "an endpoint needs a secret");
        Ok(Signer { keys: keys.into() })
    }

    /// The `webhook-signature` header value for this message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| {
                k.sign(msg_id, timestamp, body)
                    .expect("payloads are UTF-8 JSON or query strings")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors from the Standard Webhooks / Svix test suites.
    #[test]
    fn signatures_match_the_known_answer_vectors() {
        let cases = [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            (
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ];
        for (secret, id, ts, body, want) in cases {
            assert_eq!(
                Signer::new([secret]).unwrap().sign(id, ts, body.as_bytes()),
                want
            );
        }
    }

    #[test]
    fn rotation_signs_with_every_valid_secret() {
        let s = Signer::new([
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ])
        .unwrap();
        let sig = s.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(parts[1].starts_with("v1,") && parts[1] != parts[0]);
    }

    #[test]
    fn a_signed_message_verifies_with_the_svix_verifier() {
        let secret = crate::seal::new_webhook_secret();
        let body = br#"{"id":"x","event_type":"webhook.test"}"#;
        let ts = chrono::Utc::now().timestamp();
        let sig = Signer::new([secret.as_str()])
            .unwrap()
            .sign("evt_1", ts, body);
        let mut h = axum::http::HeaderMap::new();
        h.insert("webhook-id", "evt_1".parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        Webhook::new(&secret).unwrap().verify(body, &h).unwrap();
        assert!(Webhook::new(&crate::seal::new_webhook_secret())
            .unwrap()
            .verify(body, &h)
            .is_err());
    }
}
