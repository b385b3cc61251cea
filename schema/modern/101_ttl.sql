-- Modern ClickHouse only (TTL arrived in 19.6): retention by age, done by the server.
-- The collector substitutes {{retention_days}}; on 18.16 it drops old partitions itself.
ALTER TABLE sip_messages MODIFY TTL date + toIntervalDay({{retention_days}});
ALTER TABLE sip_calls MODIFY TTL date + toIntervalDay({{retention_days}});
