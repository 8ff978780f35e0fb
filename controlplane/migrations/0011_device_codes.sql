-- Device authorization (RFC 8628 style): a terminal asks for a code pair, a signed-in person
-- approves the short user code in the dashboard, and the terminal polls with the long device
-- code for a session. Only SHA-256 hashes of both codes are stored, so a database read gives
-- nobody a code to approve or to poll with. Times in milliseconds since the epoch.
CREATE TABLE device_codes (
    id TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code_hash TEXT NOT NULL UNIQUE,
    -- What the terminal called itself and the organization it asked to sign in through (SSO).
    client_name TEXT NOT NULL,
    organization TEXT,
    client_ip TEXT,
    -- pending, approved, denied or used (tokens handed out; never again).
    status TEXT NOT NULL,
    -- Who approved or denied, and the organization their session was scoped to (SSO): the
    -- terminal's session gets exactly that scope.
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    session_org TEXT,
    interval_secs BIGINT NOT NULL,
    last_polled_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX device_codes_by_expiry ON device_codes (expires_at);
