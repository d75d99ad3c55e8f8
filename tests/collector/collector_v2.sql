-- A collector database of schema version 2, as the previous version of the collector
-- wrote it: conv-1 sent by two apps (fastapi-chat, django-chat; two turns each, filed as
-- one session), a session without a workflow (lonely) and a trace without a session.
PRAGMA user_version = 2;
BEGIN TRANSACTION;
CREATE TABLE resources (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);
INSERT INTO "resources" VALUES(1,'{"neatlogs.workflow_name":"fastapi-chat","service.name":"fastapi-chat"}');
INSERT INTO "resources" VALUES(2,'{"neatlogs.workflow_name":"django-chat","service.name":"django-chat"}');
INSERT INTO "resources" VALUES(3,'{"host.name":"box"}');
INSERT INTO "resources" VALUES(4,'{"service.name":"fastapi-chat"}');
CREATE TABLE scopes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);
INSERT INTO "scopes" VALUES(1,'{"attributes":{},"name":"tests","version":""}');
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    workflow TEXT,
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
    last_output TEXT
) WITHOUT ROWID;
INSERT INTO "sessions" VALUES('conv-1','fastapi-chat',4,4,0,1700000000000000000,1700000061010000000,NULL,NULL,NULL,4,NULL,'fastapi-chat question 1',NULL);
INSERT INTO "sessions" VALUES('lonely',NULL,1,1,0,1700000120000000000,1700000120010000000,NULL,NULL,NULL,1,NULL,NULL,NULL);
CREATE TABLE span_terms (
    term TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (term, trace_id)
) WITHOUT ROWID;
INSERT INTO "span_terms" VALUES('django-chat question 1','00000000000000000000000000000005');
INSERT INTO "span_terms" VALUES('django-chat question 2','00000000000000000000000000000007');
INSERT INTO "span_terms" VALUES('django-chat turn 1','00000000000000000000000000000005');
INSERT INTO "span_terms" VALUES('django-chat turn 2','00000000000000000000000000000007');
INSERT INTO "span_terms" VALUES('fastapi-chat question 1','00000000000000000000000000000001');
INSERT INTO "span_terms" VALUES('fastapi-chat question 2','00000000000000000000000000000003');
INSERT INTO "span_terms" VALUES('fastapi-chat turn 1','00000000000000000000000000000001');
INSERT INTO "span_terms" VALUES('fastapi-chat turn 2','00000000000000000000000000000003');
INSERT INTO "span_terms" VALUES('no workflow turn','00000000000000000000000000000009');
INSERT INTO "span_terms" VALUES('orphan','0000000000000000000000000000000b');
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
INSERT INTO "spans" VALUES(1,'00000000000000000000000000000001','0000000000000002',NULL,'fastapi-chat turn 1',1,1700000000000000000,1700000000010000000,0,'','{"session.id":"conv-1","input.value":"fastapi-chat question 1"}','[]','[]',1,1,0);
INSERT INTO "spans" VALUES(2,'00000000000000000000000000000003','0000000000000004',NULL,'fastapi-chat turn 2',1,1700000001000000000,1700000001010000000,0,'','{"session.id":"conv-1","input.value":"fastapi-chat question 2"}','[]','[]',1,1,0);
INSERT INTO "spans" VALUES(3,'00000000000000000000000000000005','0000000000000006',NULL,'django-chat turn 1',1,1700000060000000000,1700000060010000000,0,'','{"session.id":"conv-1","input.value":"django-chat question 1"}','[]','[]',2,1,0);
INSERT INTO "spans" VALUES(4,'00000000000000000000000000000007','0000000000000008',NULL,'django-chat turn 2',1,1700000061000000000,1700000061010000000,0,'','{"session.id":"conv-1","input.value":"django-chat question 2"}','[]','[]',2,1,0);
INSERT INTO "spans" VALUES(5,'00000000000000000000000000000009','000000000000000a',NULL,'no workflow turn',1,1700000120000000000,1700000120010000000,0,'','{"session.id":"lonely"}','[]','[]',3,1,0);
INSERT INTO "spans" VALUES(6,'0000000000000000000000000000000b','000000000000000c',NULL,'orphan',1,1700000130000000000,1700000130010000000,0,'','{}','[]','[]',4,1,0);
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
INSERT INTO "traces" VALUES('00000000000000000000000000000001','conv-1','fastapi-chat','fastapi-chat turn 1','0000000000000002',0,1700000000000000000,1700000000010000000,1,0,NULL,NULL,NULL,0,1,NULL,NULL,NULL,'fastapi-chat question 1',1660156250000000,NULL,NULL);
INSERT INTO "traces" VALUES('00000000000000000000000000000003','conv-1','fastapi-chat','fastapi-chat turn 2','0000000000000004',0,1700000001000000000,1700000001010000000,1,0,NULL,NULL,NULL,0,1,NULL,NULL,NULL,'fastapi-chat question 2',1660156250976562,NULL,NULL);
INSERT INTO "traces" VALUES('00000000000000000000000000000005','conv-1','django-chat','django-chat turn 1','0000000000000006',0,1700000060000000000,1700000060010000000,1,0,NULL,NULL,NULL,0,1,NULL,NULL,NULL,'django-chat question 1',1660156308593750,NULL,NULL);
INSERT INTO "traces" VALUES('00000000000000000000000000000007','conv-1','django-chat','django-chat turn 2','0000000000000008',0,1700000061000000000,1700000061010000000,1,0,NULL,NULL,NULL,0,1,NULL,NULL,NULL,'django-chat question 2',1660156309570312,NULL,NULL);
INSERT INTO "traces" VALUES('00000000000000000000000000000009','lonely',NULL,'no workflow turn','000000000000000a',0,1700000120000000000,1700000120010000000,1,0,NULL,NULL,NULL,0,1,NULL,NULL,NULL,NULL,NULL,NULL,NULL);
INSERT INTO "traces" VALUES('0000000000000000000000000000000b',NULL,'fastapi-chat','orphan','000000000000000c',0,1700000130000000000,1700000130010000000,1,0,NULL,NULL,NULL,0,1,NULL,NULL,NULL,NULL,NULL,NULL,NULL);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_id, span_id);
CREATE INDEX traces_by_session ON traces (session_id, start_ns, trace_id);
CREATE INDEX traces_by_link ON traces (link_trace) WHERE link_trace IS NOT NULL;
CREATE INDEX traces_by_start ON traces (start_ns, trace_id);
CREATE INDEX sessions_by_activity ON sessions (last_ns, session_id);
CREATE INDEX sessions_by_workflow ON sessions (workflow, last_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (end_user, last_ns, session_id);
COMMIT;
