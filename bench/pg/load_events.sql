BEGIN;
TRUNCATE stage;
\copy stage (doc) FROM pstdin WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
INSERT INTO events (ts, event_type, doc)
  SELECT (doc->>'timestamp')::timestamptz, doc->>'eventType', doc FROM stage;
TRUNCATE stage;
COMMIT;
