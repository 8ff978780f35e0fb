-- Usage samples per cluster, collected from each data plane's /metrics. One sample per cluster per
-- minute bucket, so several control plane replicas collecting at once do not double-count.
CREATE TABLE usage_samples (
    cluster_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    at BIGINT NOT NULL,
    stored_bytes BIGINT NOT NULL,
    requests_total BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, bucket)
);
CREATE INDEX usage_by_org ON usage_samples (org_id, at);
