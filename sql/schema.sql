-- sovgate decision log, schema version 2 (PRAGMA user_version = 2).
--
-- This file is the readable truth of the schema. The binary carries the
-- same statements as migrations (src/dlog.c); tests/check_dlog.c builds a
-- database from this file and one from the embedded migrations and fails
-- when they differ. To change the schema: add a migration in src/dlog.c,
-- change this file to the resulting schema, and bump user_version here.
--
-- Times are UTC milliseconds since the epoch (ts_ms). The views below add
-- an RFC 3339 "ts" column for people.
--
-- Nothing here ever holds a finding's value: findings are type counts, and
-- fingerprints are HMAC-SHA256(fingerprint key, normalised value) (SPEC §8).
--
-- ---------------------------------------------------------------------
-- The hash chains
-- ---------------------------------------------------------------------
-- decisions, outcomes and events each form their own chain, in seq order.
-- For every row:
--   prev_hash = row_hash of the previous row of the same table, or the
--               table's anchor (chain_state.anchor_hash) for the first row;
--               the anchor of a never-pruned table is 64 zeros (genesis);
--   row_hash  = lowercase hex SHA-256 of the canonical encoding
--
--     "sovgate-chain-v1" 0x0A  <table name>  0x0A  <prev_hash: 64 hex chars>
--     then every chained field below, in the order listed, each encoded as
--       NULL     -> "n"
--       integer  -> "i" <decimal, "-" sign when negative> ";"
--       text     -> "t" <byte length in decimal> ":" <the UTF-8 bytes>
--       real     -> "r" <printf %.17g> ";"       (never written by sovgate)
--       blob     -> "b" <byte length in decimal> ":" <the bytes>
--     by the value's SQLite storage class, so changing a value's type is a
--     change too. Length prefixes make the encoding unambiguous.
--
--   decisions: id, ts_ms, client, endpoint, model, findings_json,
--     declared_level, level, level_rule, policy_name, policy_sha256, action,
--     reason, candidates_json, backend, backend_facts_json, cloud_act,
--     shadow_json, then the decision's fingerprints: their count (integer),
--     then type and hmac (text, text) of each, sorted by type then hmac in
--     byte order. Deleting or forging a fingerprint thus breaks the chain.
--   outcomes: decision_id, ts_ms, status, attempts, attempts_json, backend,
--     latency_ms, ttfb_ms, bytes_in, bytes_out, prompt_tokens,
--     completion_tokens, total_tokens, error.
--   events: ts_ms, kind, detail_json.
--
-- seq is not hashed: the order is protected by the links themselves, which
-- lets `log verify` tell a deleted, inserted or reordered row from a
-- modified one. chain_state.head_* records the last row of each chain so
-- that deleting the newest rows is detected too. `log prune` deletes a
-- prefix of each chain and moves anchor_* to the last deleted row, so the
-- remaining rows still verify; the prune itself is an event.
--
-- A chain without a key proves the log was not edited by anyone who could
-- not also recompute every later hash; export the head hash (`log verify`
-- prints it) to somewhere the gateway's host cannot write to make that
-- evidence independent.

CREATE TABLE decisions (
	seq                INTEGER PRIMARY KEY,
	id                 TEXT NOT NULL UNIQUE,     -- UUID, X-Sovgate-Decision
	ts_ms              INTEGER NOT NULL,
	client             TEXT,                     -- NULL if unauthenticated
	endpoint           TEXT,                     -- /v1/chat/completions
	model              TEXT,                     -- as requested
	findings_json      TEXT NOT NULL DEFAULT '{}', -- {"iban":1}: types and counts
	declared_level     TEXT,                     -- X-Sovgate-Classification
	level              TEXT,                     -- final level
	level_rule         TEXT,                     -- what set the level
	policy_name        TEXT,
	policy_sha256      TEXT,
	action             TEXT NOT NULL,            -- allow | deny | error
	reason             TEXT,                     -- deny/error code and message
	candidates_json    TEXT,                     -- every backend, verdict, reason
	backend            TEXT,                     -- chosen (first candidate)
	backend_facts_json TEXT,                     -- its derived facts
	cloud_act          INTEGER NOT NULL DEFAULT 0, -- of the chosen backend
	shadow_json        TEXT,                     -- shadow policy's decision
	prev_hash          TEXT NOT NULL,
	row_hash           TEXT NOT NULL
);
CREATE INDEX decisions_ts ON decisions (ts_ms);
CREATE INDEX decisions_client_ts ON decisions (client, ts_ms);
-- No index on backend (dropped in version 2): with a handful of backends
-- it is not selective, and every decision paid for it.

-- One row per distinct finding value of a decision.
CREATE TABLE fingerprints (
	decision_id TEXT NOT NULL,                   -- decisions.id
	type        TEXT NOT NULL,                   -- iban, national_id.fr_nir, ...
	hmac        TEXT NOT NULL                    -- hex HMAC-SHA256
);
CREATE INDEX fingerprints_hmac ON fingerprints (hmac);
CREATE INDEX fingerprints_decision ON fingerprints (decision_id);

-- What happened to a decision once it was made; written later, never by
-- rewriting the decision row. Unknown numbers are NULL.
CREATE TABLE outcomes (
	seq               INTEGER PRIMARY KEY,
	decision_id       TEXT NOT NULL,             -- decisions.id
	ts_ms             INTEGER NOT NULL,
	status            INTEGER,                   -- HTTP status sent to the client
	attempts          INTEGER,
	attempts_json     TEXT,                      -- [{"backend","result","status","ms"}]
	backend           TEXT,                      -- the one that answered
	latency_ms        INTEGER,
	ttfb_ms           INTEGER,
	bytes_in          INTEGER,
	bytes_out         INTEGER,
	prompt_tokens     INTEGER,
	completion_tokens INTEGER,
	total_tokens      INTEGER,
	error             TEXT,
	prev_hash         TEXT NOT NULL,
	row_hash          TEXT NOT NULL
);
CREATE INDEX outcomes_decision ON outcomes (decision_id);

-- Operational events: start, stop, reload (accepted or rejected, with the
-- policy's name and SHA-256), prune.
CREATE TABLE events (
	seq         INTEGER PRIMARY KEY,
	ts_ms       INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	detail_json TEXT,
	prev_hash   TEXT NOT NULL,
	row_hash    TEXT NOT NULL
);
CREATE INDEX events_ts ON events (ts_ms);

-- Anchor and head of each chain (see above).
CREATE TABLE chain_state (
	chain       TEXT PRIMARY KEY,                -- decisions | outcomes | events
	anchor_seq  INTEGER NOT NULL,                -- last pruned seq (0: none)
	anchor_hash TEXT NOT NULL,                   -- its row_hash, or genesis
	head_seq    INTEGER NOT NULL,                -- last row's seq (0: none)
	head_hash   TEXT NOT NULL                    -- last row's row_hash
);
INSERT INTO chain_state VALUES
	('decisions', 0, '0000000000000000000000000000000000000000000000000000000000000000',
	 0, '0000000000000000000000000000000000000000000000000000000000000000'),
	('outcomes', 0, '0000000000000000000000000000000000000000000000000000000000000000',
	 0, '0000000000000000000000000000000000000000000000000000000000000000'),
	('events', 0, '0000000000000000000000000000000000000000000000000000000000000000',
	 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Small facts about the log itself (created_ms, last_probe_ms).
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT
);

-- ---------------------------------------------------------------------
-- Incident-response views (examples in sql/README.md and
-- sql/incidents.sql). Filter them with WHERE like any table.
-- ---------------------------------------------------------------------

-- Every decision with its outcome and readable time: the base of the
-- other views and of `sovgate log query`.
CREATE VIEW decision_log AS
SELECT d.seq, d.id AS decision_id, d.ts_ms,
       strftime('%Y-%m-%dT%H:%M:%S', d.ts_ms / 1000, 'unixepoch')
           || printf('.%03dZ', d.ts_ms % 1000) AS ts,
       d.client, d.endpoint, d.model, d.findings_json, d.declared_level,
       d.level, d.level_rule, d.policy_name, d.policy_sha256, d.action,
       d.reason, d.backend, d.cloud_act,
       json_extract(d.backend_facts_json, '$.operator_country') AS operator_country,
       json_extract(d.backend_facts_json, '$.parent_country') AS parent_country,
       o.status, o.backend AS answered_by, o.attempts, o.attempts_json,
       o.latency_ms, o.prompt_tokens, o.completion_tokens, o.total_tokens,
       o.error
FROM decisions d
LEFT JOIN outcomes o ON o.seq = (SELECT max(seq) FROM outcomes x
                                 WHERE x.decision_id = d.id);

-- The facts last logged for each backend (as a chosen backend).
CREATE VIEW backend_facts AS
SELECT d.backend, d.backend_facts_json AS facts_json, d.cloud_act,
       json_extract(d.backend_facts_json, '$.operator_country') AS operator_country,
       json_extract(d.backend_facts_json, '$.parent_country') AS parent_country
FROM decisions d
WHERE d.seq = (SELECT max(seq) FROM decisions x WHERE x.backend = d.backend);

-- Sensitive requests (any finding, or a declared level) that reached a
-- backend whose operator or parent is subject to the US CLOUD Act: the
-- chosen backend, or any backend an attempt was sent to (failover).
CREATE VIEW sensitive_to_cloud_act AS
SELECT l.ts, l.decision_id, l.client, l.model, l.level, l.findings_json,
       l.policy_name, l.policy_sha256, l.backend, l.answered_by,
       l.attempts_json, l.status, l.ts_ms
FROM decision_log l
WHERE l.action = 'allow'
  AND (l.findings_json NOT IN ('{}', '') OR l.declared_level IS NOT NULL)
  AND (l.cloud_act = 1
       OR EXISTS (SELECT 1 FROM json_each(coalesce(l.attempts_json, '[]')) a
                  JOIN backend_facts f
                    ON f.backend = json_extract(a.value, '$.backend')
                  WHERE f.cloud_act = 1));

-- Denials by client and reason, with counts and the time span.
CREATE VIEW denials_by_client AS
SELECT d.client, d.reason, count(*) AS denials,
       strftime('%Y-%m-%dT%H:%M:%SZ', min(d.ts_ms) / 1000, 'unixepoch') AS first_ts,
       strftime('%Y-%m-%dT%H:%M:%SZ', max(d.ts_ms) / 1000, 'unixepoch') AS last_ts,
       min(d.ts_ms) AS first_ts_ms, max(d.ts_ms) AS last_ts_ms
FROM decisions d
WHERE d.action = 'deny'
GROUP BY d.client, d.reason;

-- Everything one client sent in a window:
--   SELECT * FROM client_activity
--   WHERE client = 'claims-app' AND ts >= '2026-11-01' AND ts < '2026-11-08';
CREATE VIEW client_activity AS
SELECT l.client, l.ts, l.decision_id, l.endpoint, l.model, l.findings_json,
       l.declared_level, l.level, l.action, l.reason, l.backend,
       l.answered_by, l.status, l.attempts, l.latency_ms, l.total_tokens,
       l.policy_name, l.ts_ms
FROM decision_log l;

-- Which policy was in force from when: every start and accepted reload.
CREATE VIEW policy_history AS
SELECT e.seq, strftime('%Y-%m-%dT%H:%M:%S', e.ts_ms / 1000, 'unixepoch')
           || printf('.%03dZ', e.ts_ms % 1000) AS ts,
       e.kind, json_extract(e.detail_json, '$.result') AS result,
       json_extract(e.detail_json, '$.policy') AS policy_name,
       json_extract(e.detail_json, '$.policy_sha256') AS policy_sha256,
       e.ts_ms
FROM events e
WHERE e.kind IN ('start', 'reload');

-- Decisions whose level differs from the last comparable decision (same
-- client, findings and declared level) made under a different policy, i.e.
-- requests a policy reload classified differently.
CREATE VIEW level_changes_after_reload AS
SELECT d.ts, d.decision_id, d.client, d.findings_json, d.declared_level,
       p.level AS level_before, d.level AS level_after,
       p.policy_name AS policy_before, p.policy_sha256 AS policy_sha256_before,
       d.policy_name AS policy_after, d.policy_sha256 AS policy_sha256_after,
       p.id AS compared_with, d.ts_ms
FROM decision_log d
JOIN decisions p ON p.seq = (
	SELECT x.seq FROM decisions x
	WHERE x.seq < d.seq AND x.policy_sha256 IS NOT d.policy_sha256
	  AND x.client IS d.client AND x.findings_json = d.findings_json
	  AND x.declared_level IS d.declared_level AND x.level IS NOT NULL
	ORDER BY x.seq DESC LIMIT 1)
WHERE d.level IS NOT NULL AND p.level <> d.level;

PRAGMA user_version = 2;
