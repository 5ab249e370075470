-- Incident-response queries over the views of sql/schema.sql.
-- Run them in the sqlite3 shell against a copy of the log or, read-only,
-- against the live one (WAL: the gateway keeps writing):
--   sqlite3 -readonly /var/lib/sovgate/decisions.db < incidents.sql
-- or paste one. Times: ts is RFC 3339 text (compare with strings such as
-- '2026-11-01'), ts_ms is UTC milliseconds.

.headers on
.mode column

-- 1. Did any patient identifier or health data reach a US-operated
--    (CLOUD Act) backend in the last 7 days, and under which policy?
SELECT ts, decision_id, client, level, findings_json, backend, answered_by,
       policy_name, substr(policy_sha256, 1, 12) AS policy
FROM sensitive_to_cloud_act
WHERE ts_ms >= (CAST(strftime('%s', 'now', '-7 days') AS INTEGER) * 1000)
  AND EXISTS (SELECT 1 FROM json_each(findings_json) f
              WHERE f.key = 'health' OR f.key LIKE 'health.%'
                 OR f.key = 'national_id' OR f.key LIKE 'national_id.%');

-- 2. Denials by client and reason.
SELECT client, denials, reason, first_ts, last_ts
FROM denials_by_client
ORDER BY denials DESC;

-- 3. Everything one client sent in a window (edit the three values).
SELECT ts, decision_id, model, level, action, answered_by, status, findings_json
FROM client_activity
WHERE client = 'claims-app'
  AND ts >= '2026-11-01' AND ts < '2026-11-08'
ORDER BY ts;

-- 4. Requests a policy reload classified differently, and the policies.
SELECT ts, decision_id, client, findings_json, level_before, level_after,
       substr(policy_sha256_before, 1, 12) AS policy_before,
       substr(policy_sha256_after, 1, 12) AS policy_after
FROM level_changes_after_reload
ORDER BY ts;

-- 5. Which policy was in force when: starts and reloads (accepted and
--    rejected), and the prunes that removed old rows.
SELECT ts, kind, result, policy_name, policy_sha256 FROM policy_history;
SELECT seq, ts_ms, detail_json FROM events WHERE kind = 'prune';

-- 6. Which decisions held one specific value? Never by SQL: the log holds
--    only keyed fingerprints. Use: sovgate log find-value 'FR76 3000 ...'
