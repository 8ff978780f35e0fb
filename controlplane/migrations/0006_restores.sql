-- A cluster restored from another cluster's backups remembers its source and target.
ALTER TABLE clusters ADD COLUMN restore_cluster_id TEXT;
ALTER TABLE clusters ADD COLUMN restore_backup_id TEXT;
ALTER TABLE clusters ADD COLUMN restore_target_time TEXT;
