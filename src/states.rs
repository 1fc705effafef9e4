//! Typed states: every closed set of values the database stores as text (job kinds and
//! statuses, delivery statuses, connection statuses and error types, attempt triggers
//! and error kinds) is an enum here, with its one mapping to and from that text.
//!
//! Code compares enums, never strings. SQL that must name a state in its text (the
//! partial indexes `jobs_due` and `deliveries_due` only serve queries whose predicate
//! is the same literal, so those states cannot be bound parameters) takes it from
//! [`sql`](JobStatus::sql), which quotes the same mapping.

use std::fmt;
use std::str::FromStr;

/// Declares a text-backed enum: `as_str`, `sql`, `ALL`, `Display`, `FromStr` and serde
/// as the stored text, all from one list of `Variant = "text"` pairs.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The stored text as a quoted SQL literal, for the few queries that must
            /// name it in their text (see the module documentation).
            pub const fn sql(self) -> &'static str {
                match self {
                    $($name::$variant => concat!("'", $text, "'"),)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: stringify!($name), text: s.to_string() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A stored text that names no value of its enum: a database written by something
/// else, or a newer version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{text}`")]
pub struct UnknownState {
    pub kind: &'static str,
    pub text: String,
}

text_enum! {
    /// What a job does.
    pub enum JobKind {
        /// One window of a resource's history, run once, newest window first.
        Backfill = "backfill",
        /// The recurring poll of recent data.
        Poll = "poll",
        /// A one-off pull of what a provider's notification named (one record, or a
        /// range), run once, ahead of polls and backfills.
        Pull = "pull",
    }
}

text_enum! {
    /// Where a job is in its life.
    pub enum JobStatus {
        /// Waiting to run at `next_run_at` (or claimed: its lease is in `next_run_at`).
        Pending = "pending",
        /// A backfill window completed.
        Done = "done",
        /// Given up (malformed data that retrying will not fix); its error is kept.
        Failed = "failed",
        /// Its connection ended (errored or deregistered).
        Stopped = "stopped",
    }
}

text_enum! {
    /// Where a delivery (event × endpoint) is in its life.
    pub enum DeliveryStatus {
        /// Waiting for its first attempt (or re-queued by recover).
        Pending = "pending",
        /// An attempt failed and another is scheduled at `next_attempt_at`.
        Retrying = "retrying",
        /// An attempt got a 2xx.
        Succeeded = "succeeded",
        /// The schedule ran out, or the endpoint was disabled or gone.
        Exhausted = "exhausted",
    }
}

impl DeliveryStatus {
    /// Still to be attempted: a worker will claim it when it falls due.
    pub fn is_open(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Retrying)
    }
}

text_enum! {
    /// A connection's state.
    pub enum ConnectionStatus {
        /// Polling for it.
        Connected = "connected",
        /// Stopped for good by the provider's refusal; the user must reconnect.
        Error = "error",
        /// Removed by the app (or the provider): polling for it stopped.
        Deregistered = "deregistered",
    }
}

text_enum! {
    /// Why a connection errored: `provider.connection.error`'s `error_type`.
    pub enum ConnectionErrorType {
        /// The provider refused the refresh token (or the access token, with none to refresh).
        TokenRefreshFailed = "token_refresh_failed",
        /// The user did not grant a scope the connection needs.
        RequiredScopesNotGranted = "required_scopes_not_granted",
        /// The provider ended the connection on its side.
        DeregisteredPerProvider = "deregistered_per_provider",
        /// The provider refused our requests for good.
        ProviderApiError = "provider_api_error",
        Unknown = "unknown",
    }
}

text_enum! {
    /// What made a delivery attempt.
    pub enum AttemptTrigger {
        /// The delivery worker, on the retry schedule.
        Scheduled = "scheduled",
        /// A manual resend.
        Manual = "manual",
    }
}

text_enum! {
    /// Why an attempt got no HTTP answer that counts (an attempt with a non-2xx status
    /// is `http`; a refused destination is `blocked`).
    pub enum AttemptErrorKind {
        Timeout = "timeout",
        Connect = "connect",
        Dns = "dns",
        Tls = "tls",
        Http = "http",
        /// Refused by the outbound policy (private address, scheme).
        Blocked = "blocked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr<Err = UnknownState>,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        for &v in all {
            let text = v.to_string();
            assert_eq!(text.parse::<T>().unwrap(), v);
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        }
    }

    #[test]
    fn every_state_round_trips_through_its_stored_text() {
        round_trips(JobKind::ALL);
        round_trips(JobStatus::ALL);
        round_trips(DeliveryStatus::ALL);
        round_trips(ConnectionStatus::ALL);
        round_trips(ConnectionErrorType::ALL);
        round_trips(AttemptTrigger::ALL);
        round_trips(AttemptErrorKind::ALL);
    }

    #[test]
    fn unknown_text_is_an_error_naming_the_kind() {
        let e = "paused".parse::<JobStatus>().unwrap_err();
        assert_eq!(e.to_string(), "unknown JobStatus `paused`");
        assert!(serde_json::from_str::<DeliveryStatus>("\"sent\"").is_err());
        assert!(
            "Pending".parse::<DeliveryStatus>().is_err(),
            "the text is exact"
        );
    }

    #[test]
    fn sql_literals_quote_the_stored_text() {
        assert_eq!(JobStatus::Pending.sql(), "'pending'");
        assert_eq!(DeliveryStatus::Retrying.sql(), "'retrying'");
        for s in DeliveryStatus::ALL {
            assert_eq!(s.sql(), format!("'{}'", s.as_str()));
        }
    }

    #[test]
    fn open_deliveries_are_pending_or_retrying() {
        let open: Vec<_> = DeliveryStatus::ALL.iter().filter(|s| s.is_open()).collect();
        assert_eq!(open, [&DeliveryStatus::Pending, &DeliveryStatus::Retrying]);
    }
}
