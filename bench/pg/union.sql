-- The union view by hand: per cluster, for every top-level field of its fragments (identityMap
-- excepted), the value of the newest fragment that has the field (newest = loaded last: fid order).
-- Whole subtrees win: CRM {"_acme": {"crm"}} and loyalty {"_acme": {"loyalty"}} do not merge, the
-- newer _acme replaces the older (kith merges leaf by leaf, so both survive there).
BEGIN;
INSERT INTO profile_union (cluster, identities, entity)
SELECT c.label, ids.identities, c.entity
FROM (SELECT label, jsonb_object_agg(key, value) AS entity
        FROM (SELECT DISTINCT ON (i.label, kv.key) i.label, kv.key, kv.value
                FROM fragments f
                JOIN frag_node r ON r.fid = f.fid
                JOIN ident i ON i.nid = r.nid,
                jsonb_each(f.doc) kv
               WHERE kv.key <> 'identityMap'
               ORDER BY i.label, kv.key, f.fid DESC) newest
       GROUP BY label) c
JOIN (SELECT label, jsonb_agg(jsonb_build_object('namespace', ns, 'id', id)) AS identities
        FROM ident GROUP BY label) ids USING (label);
COMMIT;
SELECT 'UNION profiles=' || count(*) AS result FROM profile_union;
