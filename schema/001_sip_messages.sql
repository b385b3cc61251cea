-- One row per HEP packet received: for SIP, one captured message per capture point.
-- The same packet seen by two agents gives two rows with the same msg_hash (one
-- message, two sightings); a retransmission is a new row later in time.
-- Non-SIP HEP payloads (RTCP reports, logs, ...) are kept here too with their
-- payload_type and the HEP correlation id in call_id, so they stay countable.
--
-- Portable to ClickHouse 18.16: DateTime + a microseconds column instead of DateTime64,
-- addresses as String, no TTL/codecs/skip indexes (see modern/).
--
-- Sort key: a call is one contiguous range per daily partition (Call-ID lookup reads a
-- few granules); number and node searches use the per-call summary (002) or scan the
-- days asked for.
CREATE TABLE IF NOT EXISTS sip_messages
(
    date Date DEFAULT toDate(ts),
    ts DateTime,
    ts_us UInt32,
    id UInt64,
    node_id UInt32,
    node_name String,
    payload_type UInt8,
    transport UInt8,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    is_request UInt8,
    method String,
    status UInt16,
    reason String,
    call_id String,
    correlation_id String,
    aleg_id String,
    cseq_num UInt32,
    cseq_method String,
    from_user String,
    from_domain String,
    from_tag String,
    to_user String,
    to_domain String,
    to_tag String,
    ruri_user String,
    ruri_domain String,
    via_branch String,
    user_agent String,
    pai_user String,
    sdp_addr String,
    sdp_port UInt16,
    raw String,
    msg_hash UInt64 DEFAULT cityHash64(raw)
)
ENGINE = MergeTree()
PARTITION BY date
ORDER BY (call_id, ts, ts_us)
SETTINGS index_granularity = 8192;
