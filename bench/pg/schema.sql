-- kith bench, PostgreSQL side: the tables a hand-built profile pipeline uses.
-- Raw JSON lines go through unlogged staging tables (COPY), then into durable typed tables.
CREATE UNLOGGED TABLE stage (doc jsonb NOT NULL);

-- Profile fragments: one row per CRM or loyalty record, in load order (fid = "newest" order).
CREATE TABLE fragments (
  fid     bigserial PRIMARY KEY,
  dataset text      NOT NULL,
  doc     jsonb     NOT NULL
);

-- Experience events: the JSON document plus the columns the segments filter on.
CREATE TABLE events (
  eid        bigserial PRIMARY KEY,
  ts         timestamptz NOT NULL,
  event_type text        NOT NULL,
  doc        jsonb       NOT NULL
);
CREATE INDEX events_type_ts ON events (event_type, ts);

-- Identity graph: every (namespace, id) seen, its connected-component label, and which identities each
-- record carries (kind 'f' fragment, 'e' event).
CREATE TABLE ident (
  nid   serial PRIMARY KEY,
  ns    text NOT NULL,
  id    text NOT NULL,
  label int,
  UNIQUE (ns, id)
);
CREATE TABLE rec_ident (kind "char" NOT NULL, rid bigint NOT NULL, nid int NOT NULL);
CREATE TABLE edge (a int NOT NULL, b int NOT NULL);
-- Each record's node (its smallest identity): its cluster is that node's label at query time.
CREATE TABLE frag_node (fid bigint PRIMARY KEY, nid int NOT NULL);
CREATE TABLE event_node (eid bigint PRIMARY KEY, nid int NOT NULL);

-- The union view, materialised: one row per cluster that has at least one fragment.
CREATE TABLE profile_union (
  cluster    int PRIMARY KEY,
  identities jsonb NOT NULL,
  entity     jsonb NOT NULL
);

-- Lookup keys for pgbench (the same list kith is asked for).
CREATE TABLE lookup_keys (n serial PRIMARY KEY, ns text NOT NULL, id text NOT NULL);
