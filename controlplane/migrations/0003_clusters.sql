-- Clusters and the asynchronous operations that change them.
CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    region TEXT NOT NULL,
    replicas INTEGER NOT NULL,
    version TEXT NOT NULL,
    phase TEXT NOT NULL,
    endpoint TEXT,
    message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE operations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    cluster_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    response TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX operations_by_cluster ON operations (cluster_id, status);
