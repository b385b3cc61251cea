-- Per-call summary, maintained by ClickHouse itself: every insert into sip_messages
-- adds partial aggregate states here, merged in the background and at query time
-- (`...Merge` functions, GROUP BY call_id). The collector keeps no call state, so any
-- number of collectors can write the messages of one call.
--
-- Times are microseconds since the epoch (UInt64). A call that spans midnight has one
-- row per day; queries merge them.
CREATE TABLE IF NOT EXISTS sip_calls
(
    date Date,
    call_id String,
    first_us AggregateFunction(min, UInt64),
    last_us AggregateFunction(max, UInt64),
    messages AggregateFunction(count),
    caller AggregateFunction(argMin, String, UInt64),
    callee AggregateFunction(argMin, String, UInt64),
    final_status AggregateFunction(argMax, UInt16, UInt64),
    nodes AggregateFunction(groupUniqArray, String),
    methods AggregateFunction(groupUniqArray, String),
    aleg_id AggregateFunction(max, String)
)
ENGINE = AggregatingMergeTree()
PARTITION BY date
ORDER BY (date, call_id);

-- caller/callee: From/To users of the first INVITE (a message that is not an INVITE
-- request sorts 2^62 us later, so it is used only when the call has no INVITE).
-- final_status: the last final response (>= 200) to an INVITE, else the last final
-- response to anything; 0 when there is none.
CREATE MATERIALIZED VIEW IF NOT EXISTS sip_calls_mv TO sip_calls AS
SELECT
    date,
    call_id,
    minState(toUInt64(ts) * 1000000 + ts_us) AS first_us,
    maxState(toUInt64(ts) * 1000000 + ts_us) AS last_us,
    countState() AS messages,
    argMinState(from_user, toUInt64(ts) * 1000000 + ts_us
        + if(is_request = 1 AND method = 'INVITE', 0, 4611686018427387904)) AS caller,
    argMinState(to_user, toUInt64(ts) * 1000000 + ts_us
        + if(is_request = 1 AND method = 'INVITE', 0, 4611686018427387904)) AS callee,
    argMaxState(if(is_request = 0 AND status >= 200, status, toUInt16(0)),
        if(is_request = 0 AND status >= 200,
           toUInt64(ts) * 1000000 + ts_us + if(cseq_method = 'INVITE', 4611686018427387904, 0),
           toUInt64(0))) AS final_status,
    groupUniqArrayState(node_name) AS nodes,
    groupUniqArrayState(if(is_request = 1, method, cseq_method)) AS methods,
    maxState(aleg_id) AS aleg_id
FROM sip_messages
WHERE payload_type = 1 AND call_id != ''
GROUP BY date, call_id;
