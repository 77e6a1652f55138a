-- The seed's three segments (shared/PQL.md) as SQL on the stitched clusters (ident.label of each
-- event's node). Each counts the qualifying clusters; run with \timing on. Time zone UTC.
-- psql -v now=RFC3339: the evaluation instant ("now"; "today" is its UTC day), the one kith's
-- segment job used (compare.sh), instead of the wall clock, so both sides answer for one instant.
SET TIME ZONE 'UTC';
\echo SEG 1
-- xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000
SELECT count(*) AS members FROM (
  SELECT i.label FROM events e JOIN event_node n USING (eid) JOIN ident i ON i.nid = n.nid
   WHERE e.event_type = 'commerce.purchases'
   GROUP BY i.label
  HAVING sum((e.doc->'commerce'->'order'->>'priceTotal')::numeric) > 10000) s;
\echo SEG 2
-- xEvent[eventType = "commerce.purchases"].max(timestamp) occurs = 7 days before today
SELECT count(*) AS members FROM (
  SELECT i.label FROM events e JOIN event_node n USING (eid) JOIN ident i ON i.nid = n.nid
   WHERE e.event_type = 'commerce.purchases'
   GROUP BY i.label
  HAVING max(e.ts)::date = (:'now'::timestamptz)::date - 7) s;
\echo SEG 3
-- xEvent[eventType = "advertising.impressions" and _acme.campaignId in [c-101..c-105]
--        and timestamp occurs <= 30 minutes before now]._acme.campaignId.distinct().count() >= 3
SELECT count(*) AS members FROM (
  SELECT i.label FROM events e JOIN event_node n USING (eid) JOIN ident i ON i.nid = n.nid
   WHERE e.event_type = 'advertising.impressions'
     AND e.ts >= :'now'::timestamptz - interval '30 minutes' AND e.ts <= :'now'::timestamptz
     AND e.doc->'_acme'->>'campaignId' IN ('c-101', 'c-102', 'c-103', 'c-104', 'c-105')
   GROUP BY i.label
  HAVING count(DISTINCT e.doc->'_acme'->>'campaignId') >= 3) s;
