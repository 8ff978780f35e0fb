-- The regions of a global database (one cluster in several regions, issue 20), in the order they
-- were asked for; the first is the cluster's primary (its `region` and `endpoint`). A
-- single-region cluster has no rows here. Each region's endpoint, phase and stream links are
-- what the provisioner last reported (`links`: a JSON array of `RegionLink`).
CREATE TABLE cluster_regions (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    endpoint TEXT,
    phase TEXT,
    links TEXT,
    PRIMARY KEY (cluster_id, name)
);
