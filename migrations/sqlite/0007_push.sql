-- Push: every provider notification received, once per (provider, key), with what it
-- caused, so a provider's retry or replay does nothing twice (see store/push.rs).
CREATE TABLE notifications (
    provider TEXT NOT NULL,
    key TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    -- The provider's id of the user the notification names.
    user_ref TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT,
    outcome TEXT NOT NULL,
    connections INTEGER NOT NULL,
    PRIMARY KEY (provider, key)
);
CREATE INDEX notifications_by_time ON notifications (received_at);

-- When the provider last pushed for a connection: while it pushes, polling is only a
-- safety net.
ALTER TABLE connections ADD COLUMN last_push_at INTEGER;
-- Notifications name the provider's user.
CREATE INDEX connections_by_external_user ON connections (provider, external_user_id);

-- A pull a notification caused targets one record where it names one.
ALTER TABLE jobs ADD COLUMN record_key TEXT;
-- Due pulls are claimed before polls and backfills.
CREATE INDEX jobs_due_pulls ON jobs (next_run_at) WHERE status = 'pending' AND kind = 'pull';

-- Subscriptions to a provider's notifications: the app's (scope 'app') and each
-- connection's (Withings), with what the provider said when they were made.
CREATE TABLE push_subscriptions (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    connection_id TEXT REFERENCES connections(id) ON DELETE CASCADE,
    remote_id TEXT,
    callback_url TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at INTEGER,
    signing_secret_sealed TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_by_provider ON push_subscriptions (provider);
