-- psql -v dataset=NAME -f load_fragments.sql <FILE.jsonl: one transaction, COPY the raw lines, then insert typed rows.
BEGIN;
TRUNCATE stage;
\copy stage (doc) FROM pstdin WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
INSERT INTO fragments (dataset, doc) SELECT :'dataset', doc FROM stage;
TRUNCATE stage;
COMMIT;
