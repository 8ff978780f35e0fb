-- Scale to zero and the gateway's reports.
--
-- `suspended` is what the cluster should be (1: scaled to zero), set with the suspend or resume
-- operation in one transaction; the phase says what the provisioner last saw. `last_active_at`
-- (ms) is the latest request a gateway reported or the usage sampler counted.
ALTER TABLE clusters ADD COLUMN suspended BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN last_active_at BIGINT;
-- Requests clients made of a data plane (without the control plane's and gateway's probes):
-- a rise between two samples is activity of a cluster reached directly.
ALTER TABLE usage_samples ADD COLUMN client_requests BIGINT NOT NULL DEFAULT 0;

-- What each gateway replica served per cluster per second (bucket = ms / 1000), kept for a
-- minute: the rate shares are computed from every replica's last seconds, so several
-- control-plane replicas answering syncs agree.
CREATE TABLE gateway_reports (
    gateway_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    throttled BIGINT NOT NULL,
    server_errors BIGINT NOT NULL,
    slow_requests BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, cluster_id, bucket)
);
CREATE INDEX gateway_reports_by_bucket ON gateway_reports (bucket);

-- When each gateway replica last synced: the live replicas are those of the last seconds.
CREATE TABLE gateway_syncs (
    gateway_id TEXT PRIMARY KEY,
    synced_at BIGINT NOT NULL
);

-- Per-minute totals per cluster (minute = ms / 60000), the SLOs' good and bad events; kept 31 days.
CREATE TABLE cluster_minutes (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    minute BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    server_errors BIGINT NOT NULL,
    slow_requests BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, minute)
);
