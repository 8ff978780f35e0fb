-- Each cluster's own data-token signing key (Ed25519, PKCS#8 PEM), so a token signed for one
-- cluster never verifies on another whatever it claims. A cluster without a row (created before
-- this migration) keeps the control plane's global key until its next change.
CREATE TABLE cluster_keys (
    cluster_id TEXT PRIMARY KEY REFERENCES clusters (id) ON DELETE CASCADE,
    private_pem TEXT NOT NULL,
    public_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The data-plane tokens issued, by their id (the JWT's jti), to list and revoke them. Rows are
-- needed only until the token expires (times in milliseconds since the epoch).
CREATE TABLE data_tokens (
    id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    scope TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT
);
CREATE INDEX data_tokens_by_cluster ON data_tokens (cluster_id, expires_at);
CREATE INDEX data_tokens_by_expiry ON data_tokens (expires_at);
