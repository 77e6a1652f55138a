-- Identity stitching by hand: extract identities, link the identities of each record, and find the
-- connected components by label propagation (a plpgsql loop until no label changes).
-- Same linking rule as kith's defaults: no unique namespace, the generic junk values and kith's
-- blocked junk emails never become identities. Not mirrored: kith's --max-graph (50 identities per
-- graph; this population's graphs stay far below it).
BEGIN;
INSERT INTO ident (ns, id)
  SELECT DISTINCT m.key, x->>'id'
  FROM (SELECT doc FROM fragments UNION ALL SELECT doc FROM events) r,
       jsonb_each(r.doc->'identityMap') m, jsonb_array_elements(m.value) x
  WHERE coalesce(x->>'id', '') NOT IN ('', 'null', 'anonymous', 'invalid', 'undefined', 'unknown')
    -- kith's default blocked emails (src/identity/rules.c), so both sides link the same pairs
    AND NOT (m.key = 'Email' AND lower(x->>'id') IN ('test@test.com', 'test@example.com',
             'user@example.com', 'email@email.com', 'noemail@noemail.com', 'no@email.com',
             'none@none.com', 'not-specified', 'user_null', 'na@na.com'));
ANALYZE ident;
INSERT INTO rec_ident (kind, rid, nid)
  SELECT 'f', f.fid, i.nid FROM fragments f, jsonb_each(f.doc->'identityMap') m,
         jsonb_array_elements(m.value) x, ident i WHERE i.ns = m.key AND i.id = x->>'id'
  UNION ALL
  SELECT 'e', e.eid, i.nid FROM events e, jsonb_each(e.doc->'identityMap') m,
         jsonb_array_elements(m.value) x, ident i WHERE i.ns = m.key AND i.id = x->>'id';
CREATE INDEX rec_ident_rec ON rec_ident (kind, rid);
INSERT INTO frag_node SELECT rid, min(nid) FROM rec_ident WHERE kind = 'f' GROUP BY rid;
INSERT INTO event_node SELECT rid, min(nid) FROM rec_ident WHERE kind = 'e' GROUP BY rid;
-- A star per record (every identity to the record's smallest), both directions, deduplicated.
INSERT INTO edge (a, b)
  SELECT DISTINCT a, b FROM (
    SELECT r.nid AS a, s.lo AS b FROM rec_ident r
      JOIN (SELECT kind, rid, min(nid) lo FROM rec_ident GROUP BY kind, rid) s USING (kind, rid)
     WHERE r.nid <> s.lo
    UNION ALL
    SELECT s.lo, r.nid FROM rec_ident r
      JOIN (SELECT kind, rid, min(nid) lo FROM rec_ident GROUP BY kind, rid) s USING (kind, rid)
     WHERE r.nid <> s.lo) t;
CREATE INDEX edge_a ON edge (a);
UPDATE ident SET label = nid;
ANALYZE ident; ANALYZE edge; ANALYZE rec_ident; ANALYZE frag_node; ANALYZE event_node;
DO $$
DECLARE changed bigint; rounds int := 0;
BEGIN
  LOOP
    UPDATE ident SET label = m.l
      FROM (SELECT e.a AS n, min(j.label) AS l FROM edge e JOIN ident j ON j.nid = e.b GROUP BY e.a) m
     WHERE ident.nid = m.n AND m.l < ident.label;
    GET DIAGNOSTICS changed = ROW_COUNT;
    rounds := rounds + 1;
    EXIT WHEN changed = 0;
  END LOOP;
  RAISE NOTICE 'label propagation: % rounds', rounds;
END $$;
CREATE INDEX ident_label ON ident (label);
COMMIT;
SELECT 'STITCH identities=' || (SELECT count(*) FROM ident) || ' clusters=' ||
       (SELECT count(DISTINCT label) FROM ident) AS result;
