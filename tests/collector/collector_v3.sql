-- A collector database of schema version 3, as the previous version of the collector
-- wrote it: conv-1's two turns carry the felt-latency figures (the second answer cut
-- short), and each was judged minutes later by a feedback span in an export of its own
-- (thumbs up on the first, down with a label and a comment on the second), which that
-- version counted as a span of the turn and stretched the turn's end to; quiet is a
-- session with neither.
PRAGMA user_version = 3;
BEGIN TRANSACTION;
CREATE TABLE resources (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);
INSERT INTO "resources" VALUES(1,'{"service.name":"support-bot"}');
CREATE TABLE scopes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);
INSERT INTO "scopes" VALUES(1,'{"attributes":{},"name":"neatlogs_web","version":""}');
CREATE TABLE sessions (
    session_id TEXT NOT NULL,
    workflow TEXT NOT NULL,
    trace_count INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    turn_count INTEGER NOT NULL,
    end_user TEXT,
    first_input TEXT,
    last_output TEXT,
    PRIMARY KEY (session_id, workflow)
) WITHOUT ROWID;
INSERT INTO "sessions" VALUES('conv-1','support-bot',2,4,0,1700000000000000000,1700000130000000000,NULL,NULL,NULL,2,NULL,'question 1',NULL);
INSERT INTO "sessions" VALUES('quiet','support-bot',1,1,0,1700000200000000000,1700000200010000000,NULL,NULL,NULL,1,NULL,'hello',NULL);
CREATE TABLE span_terms (
    term TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (term, trace_id)
) WITHOUT ROWID;
INSERT INTO "span_terms" VALUES('cut off','00000000000000000000000000000003');
INSERT INTO "span_terms" VALUES('feedback','00000000000000000000000000000001');
INSERT INTO "span_terms" VALUES('feedback','00000000000000000000000000000003');
INSERT INTO "span_terms" VALUES('hello','00000000000000000000000000000005');
INSERT INTO "span_terms" VALUES('it stopped mid-sentence','00000000000000000000000000000003');
INSERT INTO "span_terms" VALUES('question 1','00000000000000000000000000000001');
INSERT INTO "span_terms" VALUES('question 2','00000000000000000000000000000003');
INSERT INTO "span_terms" VALUES('turn','00000000000000000000000000000001');
INSERT INTO "span_terms" VALUES('turn','00000000000000000000000000000003');
INSERT INTO "span_terms" VALUES('turn','00000000000000000000000000000005');
CREATE TABLE spans (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    links TEXT NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES resources (id),
    scope_id INTEGER NOT NULL REFERENCES scopes (id),
    marker INTEGER NOT NULL
);
INSERT INTO "spans" VALUES(1,'00000000000000000000000000000001','0000000000000002',NULL,'turn',1,1700000000000000000,1700000002000000000,0,'','{"session.id":"conv-1","neatlogs.session.id":"conv-1","input.value":"question 1","neatlogs.response.time_to_start":0.05,"neatlogs.response.time_to_first_chunk":0.8,"neatlogs.response.duration":2.0,"neatlogs.response.complete":true}','[]','[]',1,1,0);
INSERT INTO "spans" VALUES(2,'00000000000000000000000000000003','0000000000000004',NULL,'turn',1,1700000010000000000,1700000013000000000,0,'','{"session.id":"conv-1","neatlogs.session.id":"conv-1","input.value":"question 2","neatlogs.response.time_to_start":0.1,"neatlogs.response.time_to_first_chunk":2.4,"neatlogs.response.complete":false}','[]','[]',1,1,0);
INSERT INTO "spans" VALUES(3,'00000000000000000000000000000001','0000000000000007','0000000000000002','feedback',1,1700000120000000000,1700000120000000000,0,'','{"session.id":"conv-1","neatlogs.session.id":"conv-1","neatlogs.feedback.score":1.0}','[]','[]',1,1,0);
INSERT INTO "spans" VALUES(4,'00000000000000000000000000000003','0000000000000008','0000000000000004','feedback',1,1700000130000000000,1700000130000000000,0,'','{"session.id":"conv-1","neatlogs.session.id":"conv-1","neatlogs.feedback.score":0.0,"neatlogs.feedback.label":"cut off","neatlogs.feedback.comment":"it stopped mid-sentence"}','[]','[]',1,1,0);
INSERT INTO "spans" VALUES(5,'00000000000000000000000000000005','0000000000000006',NULL,'turn',1,1700000200000000000,1700000200010000000,0,'','{"session.id":"quiet","input.value":"hello"}','[]','[]',1,1,0);
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,
    session_id TEXT,
    workflow TEXT,
    name TEXT,
    root_span_id TEXT,
    root_status INTEGER,
    start_ns INTEGER,
    end_ns INTEGER,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    complete INTEGER NOT NULL,
    app_spans INTEGER NOT NULL,
    link_trace TEXT,
    http_status INTEGER,
    end_user TEXT,
    input TEXT,
    input_key INTEGER,
    output TEXT,
    output_key INTEGER
) WITHOUT ROWID;
INSERT INTO "traces" VALUES('00000000000000000000000000000001','conv-1','support-bot','turn','0000000000000002',0,1700000000000000000,1700000120000000000,2,0,NULL,NULL,NULL,0,2,NULL,NULL,NULL,'question 1',1660156250000000,NULL,NULL);
INSERT INTO "traces" VALUES('00000000000000000000000000000003','conv-1','support-bot','turn','0000000000000004',0,1700000010000000000,1700000130000000000,2,0,NULL,NULL,NULL,0,2,NULL,NULL,NULL,'question 2',1660156259765625,NULL,NULL);
INSERT INTO "traces" VALUES('00000000000000000000000000000005','quiet','support-bot','turn','0000000000000006',0,1700000200000000000,1700000200010000000,1,0,NULL,NULL,NULL,0,1,NULL,NULL,NULL,'hello',1660156445312500,NULL,NULL);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_id, span_id);
CREATE INDEX traces_by_link ON traces (link_trace) WHERE link_trace IS NOT NULL;
CREATE INDEX traces_by_start ON traces (start_ns, trace_id);
CREATE INDEX traces_by_session ON traces (session_id, workflow, start_ns, trace_id);
CREATE INDEX sessions_by_activity ON sessions (last_ns, session_id, workflow);
CREATE INDEX sessions_by_workflow ON sessions (workflow, last_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (end_user, last_ns, session_id, workflow);
COMMIT;
