-- The audit log: events in one global hash chain and, when they name an organization, in that
-- organization's chain too; and signed digests of chain heads. Append-only: nothing updates or
-- deletes these rows (see src/audit/mod.rs). No foreign keys, so events outlive what they name.
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    occurred_at BIGINT NOT NULL,
    actor TEXT,
    org_id TEXT,
    source_ip TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    org_seq BIGINT,
    org_prev_hash TEXT,
    org_hash TEXT,
    -- Two replicas appending at once cannot both take an organization's next seq.
    CONSTRAINT audit_events_org_seq UNIQUE (org_id, org_seq)
);
CREATE INDEX audit_events_by_time ON audit_events (occurred_at);

-- `scope` is `global` or an organization id; one digest per chain head.
CREATE TABLE audit_digests (
    scope TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (scope, seq)
);
