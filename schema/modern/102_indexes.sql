-- Modern ClickHouse only: data-skipping indexes for the searches the sort key does not
-- serve (number suffix, node, time inside a partition) and cheaper storage.
ALTER TABLE sip_messages ADD INDEX IF NOT EXISTS idx_ts ts TYPE minmax GRANULARITY 1;
ALTER TABLE sip_messages ADD INDEX IF NOT EXISTS idx_node node_name TYPE set(256) GRANULARITY 4;
ALTER TABLE sip_messages ADD INDEX IF NOT EXISTS idx_from_user from_user TYPE ngrambf_v1(3, 4096, 2, 0) GRANULARITY 4;
ALTER TABLE sip_messages ADD INDEX IF NOT EXISTS idx_to_user to_user TYPE ngrambf_v1(3, 4096, 2, 0) GRANULARITY 4;
ALTER TABLE sip_messages MODIFY COLUMN raw String CODEC(ZSTD(3));
