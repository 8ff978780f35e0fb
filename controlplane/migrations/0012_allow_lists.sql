-- Per-cluster IP allow lists, enforced by the gateway: a JSON array of normalised CIDRs
-- (`["10.0.0.0/8","2001:db8::/32"]`); the empty array lets every address in.
ALTER TABLE clusters ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '[]';

-- Since when (ms since the epoch) the cluster's storage has been at its tier's ceiling (the
-- operator's StorageAtCeiling condition, or 80 % of the ceiling stored locally), NULL while it is
-- not: the organization is warned once per transition, not at every sample.
ALTER TABLE clusters ADD COLUMN storage_at_ceiling_since BIGINT;
