-- Webhook portal sessions. A session starts as a one-time link code; opening the link
-- spends the code and issues the session token a browser keeps in a cookie. Only hashes
-- of both are kept.
CREATE TABLE portal_sessions (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL UNIQUE,
    code_expires_at BIGINT NOT NULL,
    session_hash TEXT UNIQUE,
    session_ttl_ms BIGINT NOT NULL,
    expires_at BIGINT,
    opened_at BIGINT,
    ended_at BIGINT,
    created_at BIGINT NOT NULL
);

-- Delivery statistics read attempts by time (the portal's activity charts).
CREATE INDEX attempts_by_time ON attempts (attempted_at);
