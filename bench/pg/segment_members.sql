-- The CRMIDs of each segment's qualifying clusters (same predicates as segments.sql), tab-separated
-- (segment number, CRMID), for the cross-check with kith's memberships in compare.sh.
-- psql -v now=RFC3339: the evaluation instant, as for segments.sql.
SET TIME ZONE 'UTC';
\pset fieldsep '\t'

SELECT 1, j.id FROM (
  SELECT i.label FROM events e JOIN event_node n USING (eid) JOIN ident i ON i.nid = n.nid
   WHERE e.event_type = 'commerce.purchases'
   GROUP BY i.label
  HAVING sum((e.doc->'commerce'->'order'->>'priceTotal')::numeric) > 10000) s
  JOIN ident j ON j.label = s.label AND j.ns = 'CRMID';

SELECT 2, j.id FROM (
  SELECT i.label FROM events e JOIN event_node n USING (eid) JOIN ident i ON i.nid = n.nid
   WHERE e.event_type = 'commerce.purchases'
   GROUP BY i.label
  HAVING max(e.ts)::date = (:'now'::timestamptz)::date - 7) s
  JOIN ident j ON j.label = s.label AND j.ns = 'CRMID';

SELECT 3, j.id FROM (
  SELECT i.label FROM events e JOIN event_node n USING (eid) JOIN ident i ON i.nid = n.nid
   WHERE e.event_type = 'advertising.impressions'
     AND e.ts >= :'now'::timestamptz - interval '30 minutes' AND e.ts <= :'now'::timestamptz
     AND e.doc->'_acme'->>'campaignId' IN ('c-101', 'c-102', 'c-103', 'c-104', 'c-105')
   GROUP BY i.label
  HAVING count(DISTINCT e.doc->'_acme'->>'campaignId') >= 3) s
  JOIN ident j ON j.label = s.label AND j.ns = 'CRMID';
