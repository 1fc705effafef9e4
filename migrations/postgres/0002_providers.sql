-- Provider connections, their OAuth link tokens, polling jobs and normalised records.

-- A link token starts one connect flow; single use, expiring. Only its hash is kept.
CREATE TABLE link_tokens (
    token_hash TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    redirect_url TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);

-- One user's OAuth link to one provider. Tokens are sealed; `token_version` moves on
-- every refresh so a single-use refresh token is spent by one worker only.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    external_user_id TEXT,
    status TEXT NOT NULL,
    access_token_sealed TEXT NOT NULL,
    refresh_token_sealed TEXT,
    token_expires_at BIGINT,
    token_version BIGINT NOT NULL DEFAULT 0,
    refresh_lock_until BIGINT NOT NULL DEFAULT 0,
    error_type TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, provider)
);

-- Polling work: a backfill window of one resource, or a recurring daily poll.
-- `cursor` is the next page's cursor, committed with each page's records.
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    chunk_index BIGINT NOT NULL,
    chunk_count BIGINT NOT NULL,
    status TEXT NOT NULL,
    cursor TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_run_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (next_run_at) WHERE status = 'pending';
CREATE INDEX jobs_by_connection ON jobs (connection_id, resource, chunk_index);

-- Normalised records, keyed by stable id; `content_hash` tells a change from a replay.
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    resource TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    data TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX records_by_user ON records (team_id, user_id, resource, starts_at);
