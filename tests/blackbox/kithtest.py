"""Shared harness for kith's black-box tests.

Starts kithd on a free port with a temporary data directory, drives it over HTTP through the API.md
contract and always cleans up (no stray kithd, even when a test or the interpreter dies). Python 3
standard library only.

Environment:
  KITHD            path to the kithd binary (default: <source>/build/kithd)
  KITH_CLI         path to the kith CLI (default: <source>/build/kith)
  KITH_SOURCE_DIR  source tree (default: two levels above this file)
  KITH_TEST_KEEP   if set, keep the temporary data directories
  KITH_TEST_VERBOSE if set, print every request and response status
"""

import atexit
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

SOURCE_DIR = os.environ.get("KITH_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KITHD = os.environ.get("KITHD") or os.path.join(SOURCE_DIR, "build", "kithd")
KITH_CLI = os.environ.get("KITH_CLI") or os.path.join(SOURCE_DIR, "build", "kith")
VERBOSE = bool(os.environ.get("KITH_TEST_VERBOSE"))

PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
FG_PERSON = "https://ns.adobe.com/xdm/context/profile-person-details"
FG_PERSONAL = "https://ns.adobe.com/xdm/context/profile-personal-details"
FG_IDENTITYMAP = "https://ns.adobe.com/xdm/context/identitymap"
FG_LOYALTY = "https://ns.adobe.com/xdm/context/profile-loyalty-details"
FG_COMMERCE = "https://ns.adobe.com/xdm/context/experienceevent-commerce"
FG_WEB = "https://ns.adobe.com/xdm/context/experienceevent-web"
FG_ENV = "https://ns.adobe.com/xdm/context/experienceevent-environment-details"

READY_TIMEOUT = 20.0
HTTP_TIMEOUT = 60.0

_live_servers = []          # every KithServer started by this process
_live_lock = threading.Lock()


def uid(prefix=""):
    """A short unique string, for identity values and names that must not collide between tests."""
    return prefix + uuid.uuid4().hex[:12]


def ecid():
    """A well-formed ECID: exactly 38 digits (kith, like AEP, refuses other ECID values)."""
    return "%038d" % secrets.randbelow(10 ** 38)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _die_with_parent():
    """preexec_fn: ask Linux to SIGKILL kithd when the test process dies, so nothing is left behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ------------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body, method="", path=""):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.method = method
        self.path = path
        self._json = None
        self._parsed = False

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def json(self):
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.body.decode("utf-8")) if self.body else None
            except ValueError:
                self._json = None
        return self._json

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def __repr__(self):
        t = self.text
        if len(t) > 1500:
            t = t[:1500] + "...(%d bytes)" % len(self.body)
        return "<%s %s -> %d %s: %s>" % (self.method, self.path, self.status, self.content_type, t)


def http_request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection. Tolerates the server answering (e.g. 413) and closing
    before the whole body was sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = dict(headers or {})
    try:
        send_error = None
        try:
            conn.request(method, path, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError) as e:
            send_error = e
        try:
            r = conn.getresponse()
            data = r.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            if send_error is not None:
                raise send_error
            raise
        resp = Response(r.status, r.getheaders(), data, method, path)
        if VERBOSE:
            sys.stderr.write("  %s %s -> %d\n" % (method, path, r.status))
        return resp
    finally:
        conn.close()


def qs(**params):
    """Query string from keyword args; keys may use __ for '.' (schema__name -> schema.name)."""
    items = []
    for k, v in params.items():
        if v is None:
            continue
        items.append((k.replace("__", "."), str(v)))
    return urllib.parse.urlencode(items)


def enc(s):
    return urllib.parse.quote(s, safe="")


class Client:
    """Calls the API of one server with a key and a sandbox."""

    DEFAULT = object()

    def __init__(self, server, key, sandbox=None):
        self.server = server
        self.key = key
        self.sandbox = sandbox

    def with_key(self, key):
        return Client(self.server, key, self.sandbox)

    def in_sandbox(self, sandbox):
        return Client(self.server, self.key, sandbox)

    def request(self, method, path, json_body=None, data=None, headers=None, key=DEFAULT,
                sandbox=DEFAULT, content_type=None, use_x_api_key=False, timeout=HTTP_TIMEOUT):
        hdrs = {}
        k = self.key if key is Client.DEFAULT else key
        if k is not None:
            if use_x_api_key:
                hdrs["x-api-key"] = k
            else:
                hdrs["Authorization"] = "Bearer " + k
        sb = self.sandbox if sandbox is Client.DEFAULT else sandbox
        if sb is not None:
            hdrs["x-sandbox-name"] = sb
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            hdrs["Content-Type"] = content_type or "application/json"
        elif data is not None:
            body = data if isinstance(data, bytes) else data.encode("utf-8")
            hdrs["Content-Type"] = content_type or "application/json"
        if headers:
            hdrs.update(headers)
        return http_request(self.server.port, method, path, body, hdrs, timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json_body=None, **kw):
        return self.request("POST", path, json_body=json_body, **kw)

    def put(self, path, json_body=None, **kw):
        return self.request("PUT", path, json_body=json_body, **kw)

    def patch(self, path, json_body=None, **kw):
        return self.request("PATCH", path, json_body=json_body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # --- schemas, descriptors, datasets -------------------------------------------------------

    SCHEMAS = "/data/foundation/schemaregistry/tenant/schemas"
    DESCRIPTORS = "/data/foundation/schemaregistry/tenant/descriptors"
    UNIONS = "/data/foundation/schemaregistry/tenant/unions"
    DATASETS = "/data/foundation/catalog/dataSets"
    CONNECTIONS = "/data/foundation/flowservice/connections"
    SANDBOXES = "/data/foundation/sandbox-management/sandboxes"
    KEYS = "/data/foundation/keys"
    ENTITIES = "/data/core/ups/access/entities"

    def create_schema(self, title, cls, field_groups=(), properties=None, required=None,
                      enable_profile=True, extra=None, check=True):
        """Creates a schema from built-in field groups plus inline properties; returns the
        response JSON (with $id, meta:altId). Enables it for Profile unless told not to."""
        body = {"title": title, "type": "object", "meta:class": cls}
        all_of = [{"$ref": fg} for fg in field_groups]
        if properties is not None:
            all_of.append({"properties": properties})
        if all_of:
            body["allOf"] = all_of
        if required is not None:
            body["required"] = required
        if extra:
            body.update(extra)
        r = self.post(self.SCHEMAS, body)
        if not check:
            return r
        if r.status != 201 or not isinstance(r.json, dict) or "$id" not in r.json:
            raise AssertionError("create schema %r failed: %r" % (title, r))
        if enable_profile:
            self.enable_profile(r.json["$id"])
        return r.json

    def enable_profile(self, schema_id):
        r = self.patch(self.SCHEMAS + "/" + enc(schema_id),
                       [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}])
        if r.status != 200:
            raise AssertionError("enable schema %s for Profile failed: %r" % (schema_id, r))
        return r

    def create_descriptor(self, schema_id, pointer, namespace, primary=False, check=True):
        body = {"@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema_id,
                "xdm:sourceVersion": 1, "xdm:sourceProperty": pointer,
                "xdm:namespace": namespace, "xdm:property": "xdm:code", "xdm:isPrimary": primary}
        r = self.post(self.DESCRIPTORS, body)
        if check and r.status not in (200, 201):
            raise AssertionError("create descriptor failed: %r" % r)
        return r

    def create_dataset(self, schema_id, name=None, profile=True, identity=True, check=True):
        body = {"name": name or uid("ds-"), "schemaRef": {
            "id": schema_id, "contentType": "application/vnd.adobe.xed-full+json;version=1"}}
        tags = {}
        if profile:
            tags["unifiedProfile"] = ["enabled:true"]
        if identity:
            tags["unifiedIdentity"] = ["enabled:true"]
        if tags:
            body["tags"] = tags
        r = self.post(self.DATASETS, body)
        if not check:
            return r
        if r.status != 201:
            raise AssertionError("create dataset failed: %r" % r)
        return dataset_id_from(r)

    def create_inlet(self, name=None, auth=False, check=True):
        r = self.post(self.CONNECTIONS, {"name": name or uid("inlet-"), "authenticationRequired": auth})
        if not check:
            return r
        if r.status != 201 or not isinstance(r.json, dict) or not r.json.get("inletId"):
            raise AssertionError("create inlet failed: %r" % r)
        return r.json["inletId"]

    # --- ingestion -------------------------------------------------------------------------------

    def send(self, inlet, envelope, sync=False, key=None, **kw):
        path = "/collection/" + inlet + ("?syncValidation=true" if sync else "")
        # Inlets are unauthenticated by default; send no key unless one is given.
        return self.request("POST", path, json_body=envelope, key=key, sandbox=None, **kw)

    def send_batch(self, inlet, envelopes, key=None, **kw):
        return self.request("POST", "/collection/batch/" + inlet, json_body={"messages": envelopes},
                            key=key, sandbox=None, **kw)

    # --- profiles --------------------------------------------------------------------------------

    def lookup(self, ns, ident, **params):
        q = qs(schema__name="_xdm.context.profile", entityId=ident, entityIdNS=ns, **params)
        return self.get(self.ENTITIES + "?" + q)

    def profile(self, ns, ident, **params):
        """The single profile object of a 200 lookup (the value under the XID key)."""
        r = self.lookup(ns, ident, **params)
        if r.status != 200:
            raise AssertionError("lookup %s:%s expected 200, got %r" % (ns, ident, r))
        return profile_of(r)

    def events(self, ns, ident, **params):
        q = qs(schema__name="_xdm.context.experienceevent", relatedSchema__name="_xdm.context.profile",
               relatedEntityId=ident, relatedEntityIdNS=ns, **params)
        return self.get(self.ENTITIES + "?" + q)


def dataset_id_from(resp):
    """Dataset id from the AEP create response ["@/dataSets/<id>"]."""
    j = resp.json
    if not (isinstance(j, list) and len(j) == 1 and isinstance(j[0], str)
            and j[0].startswith("@/dataSets/")):
        raise AssertionError("dataset create response must be [\"@/dataSets/<id>\"], got %r" % resp)
    return j[0][len("@/dataSets/"):]


def profile_of(resp):
    j = resp.json
    if not isinstance(j, dict) or len(j) != 1:
        raise AssertionError("profile lookup must be an object keyed by one XID, got %r" % resp)
    (xid, prof), = j.items()
    if not isinstance(prof, dict) or "entity" not in prof:
        raise AssertionError("profile object must carry 'entity', got %r" % resp)
    prof = dict(prof)
    prof["_xid"] = xid
    return prof


def identities_of(prof):
    """Set of (namespace code lowercased, id) from a profile's `identities` (top level, as API.md
    writes it, or inside `entity`, as AEP's examples show)."""
    lst = prof.get("identities")
    if lst is None:
        lst = prof.get("entity", {}).get("identities")
    if not isinstance(lst, list):
        raise AssertionError("profile has no identities list: %r" % prof)
    out = set()
    for it in lst:
        ns = it.get("namespace")
        code = ns.get("code") if isinstance(ns, dict) else ns
        if not isinstance(code, str):
            raise AssertionError("identity without namespace.code: %r" % it)
        out.add((code.lower(), it.get("id")))
    return out


def identity_map_of(entity):
    """Set of (namespace lowercased, id) from an entity's identityMap."""
    out = set()
    for ns, lst in (entity.get("identityMap") or {}).items():
        for it in lst:
            out.add((ns.lower(), it.get("id")))
    return out


def get_path(obj, dotted, default=None):
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def envelope(schema_id, dataset_id, entity, extra_header=None):
    hdr = {"schemaRef": {"id": schema_id,
                         "contentType": "application/vnd.adobe.xed-full+json;version=1"},
           "datasetId": dataset_id, "source": {"name": "blackbox"}}
    if extra_header:
        hdr.update(extra_header)
    return {"header": hdr, "body": {"xdmMeta": {"schemaRef": {
        "id": schema_id, "contentType": "application/vnd.adobe.xed-full+json;version=1"}},
        "xdmEntity": entity}}


def idmap(*pairs, primary=None):
    """identityMap from (namespace, id) pairs; primary = index of the primary one (optional)."""
    m = {}
    for i, (ns, v) in enumerate(pairs):
        item = {"id": v, "authenticatedState": "ambiguous"}
        if primary is not None:
            item["primary"] = (i == primary)
        m.setdefault(ns, []).append(item)
    return m


def wait_backfill(api, definition, timeout=60.0):
    """Waits until the backfill job of a just stored segment definition (kith:backfillJobId) has
    finished, so that the memberships it writes for existing profiles are not mistaken for changes
    a test causes later. Returns the job."""
    job_id = definition.get("kith:backfillJobId")
    if not job_id:
        return None
    deadline = time.time() + timeout
    while True:
        r = api.get("/data/core/ups/segment/jobs/" + job_id)
        if r.status == 404:  # forgotten (only the newest job records are kept)
            return None
        if r.status != 200:
            raise AssertionError("backfill job %s: %r" % (job_id, r))
        if r.json["status"] not in ("NEW", "PROCESSING"):
            return r.json
        if time.time() > deadline:
            raise AssertionError("backfill job %s still %s" % (job_id, r.json["status"]))
        time.sleep(0.02)


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def find_dicts(obj, pred):
    """All dicts nested anywhere in obj for which pred(d) is true."""
    out = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if pred(o):
                out.append(o)
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return out


# ------------------------------------------------------------------------------------------------
# Standard fixture: the schemas and datasets most tests use.

ACME_PROFILE_PROPS = {
    "_acme": {"type": "object", "properties": {
        "crmId": {"type": "string"},
        "tier": {"type": "string", "enum": ["bronze", "silver", "gold"]},
        "points": {"type": "integer", "minimum": 0, "maximum": 1000000},
        "score": {"type": "number"},
        "vip": {"type": "boolean"},
        "joined": {"type": "string", "format": "date-time"},
        "birthday": {"type": "string", "format": "date"},
        "code": {"type": "string", "minLength": 2, "maxLength": 8},
        "tags": {"type": "array", "items": {"type": "string"}},
        "prefs": {"type": "object", "properties": {
            "color": {"type": "string"}, "size": {"type": "integer"}}},
        "attrs": {"type": "object", "meta:xdmType": "map",
                  "additionalProperties": {"type": "string"}},
        "note": {"type": "string"},
    }}
}

ACME_EVENT_PROPS = {
    "_acme": {"type": "object", "properties": {
        "campaignId": {"type": "string"},
        "seq": {"type": "integer"},
    }}
}


class Fixture:
    """Profile schema + event schema (Profile-enabled), a CRMID descriptor, two profile datasets
    (crm, loyalty), one event dataset (web) and one inlet, in one sandbox."""

    def __init__(self, api):
        self.api = api
        self.profile_schema = api.create_schema(
            uid("Customers "), PROFILE_CLASS, [FG_PERSON, FG_PERSONAL, FG_IDENTITYMAP],
            ACME_PROFILE_PROPS)
        self.profile_schema_id = self.profile_schema["$id"]
        api.create_descriptor(self.profile_schema_id, "/_acme/crmId", "CRMID", primary=False)
        self.event_schema = api.create_schema(
            uid("Web events "), EVENT_CLASS, [FG_WEB, FG_COMMERCE, FG_IDENTITYMAP], ACME_EVENT_PROPS)
        self.event_schema_id = self.event_schema["$id"]
        self.crm = api.create_dataset(self.profile_schema_id, uid("crm-"))
        self.loyalty = api.create_dataset(self.profile_schema_id, uid("loyalty-"))
        self.web = api.create_dataset(self.event_schema_id, uid("web-"))
        self.inlet = api.create_inlet(uid("inlet-"))

    def record(self, entity, dataset=None):
        return envelope(self.profile_schema_id, dataset or self.crm, entity)

    def event(self, entity, dataset=None):
        return envelope(self.event_schema_id, dataset or self.web, entity)

    def ingest(self, env, sync=False):
        r = self.api.send(self.inlet, env, sync=sync)
        if r.status != 200:
            raise AssertionError("ingest expected 200, got %r" % r)
        return r.json

    def ingest_record(self, entity, dataset=None):
        return self.ingest(self.record(entity, dataset))

    def ingest_event(self, entity, dataset=None):
        return self.ingest(self.event(entity, dataset))


def web_event(ids, ts_ms, event_id=None, page="home", **acme):
    ent = {"_id": event_id or uid("ev-"), "timestamp": iso(ts_ms),
           "eventType": "web.webpagedetails.pageViews",
           "identityMap": idmap(*ids),
           "web": {"webPageDetails": {"name": page}}}
    if acme:
        ent["_acme"] = acme
    return ent


# ------------------------------------------------------------------------------------------------
# Server process


class KithServer:
    """One kithd process on a free port. data_dir is created (and removed at cleanup) unless given."""

    def __init__(self, data_dir=None, admin_key=None, extra_args=(), env=None, use_admin_env=True):
        if not os.path.exists(KITHD):
            raise AssertionError("kithd binary not found at %s (set KITHD or run make)" % KITHD)
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kith-bb-")
        self.admin_key = admin_key or ("adm-" + secrets.token_hex(16))
        self.use_admin_env = use_admin_env
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.proc = None
        self.port = None
        self.log_path = None
        self.logs = []
        self._log_file = None
        with _live_lock:
            _live_servers.append(self)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout=READY_TIMEOUT):
        last_err = None
        for _attempt in range(3):
            self.port = free_port()
            try:
                self._spawn()
                self.wait_ready(timeout)
                return self
            except _PortInUse as e:
                last_err = e
                continue
        raise AssertionError("kithd could not start: %s" % last_err)

    def _spawn(self):
        self._close_log()
        env = dict(os.environ)
        if self.use_admin_env:
            env["KITH_ADMIN_KEY"] = self.admin_key
        else:
            env.pop("KITH_ADMIN_KEY", None)
        env.update(self.extra_env)
        fd, self.log_path = tempfile.mkstemp(prefix="kithd-", suffix=".log")
        os.close(fd)
        self.logs.append(self.log_path)
        self._log_file = open(self.log_path, "wb")
        args = [KITHD, "--listen", "127.0.0.1:%d" % self.port, "--data-dir", self.data_dir] + \
            self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent)

    def log_tail(self, n=60):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                tail = self.log_tail()
                self._close_log()
                if re.search(r"address already in use|EADDRINUSE|bind", tail, re.I):
                    raise _PortInUse(tail)
                raise AssertionError("kithd exited with %s before /readyz answered 200; output:\n%s"
                                     % (rc, tail))
            try:
                r = http_request(self.port, "GET", "/readyz", timeout=2)
                # Another test's kithd may hold this port (free_port races under ctest -j): only
                # our own process's "serving" line makes a 200 ours.
                if r.status == 200 and self._serving():
                    return
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.05)
        tail = self.log_tail()
        self.kill()
        raise AssertionError("kithd not ready within %.0fs (last: %r); output:\n%s"
                             % (timeout, last, tail))

    def _serving(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return False
        with open(self.log_path, "rb") as f:
            return ("serving http://127.0.0.1:%d " % self.port).encode() in f.read()

    def _close_log(self):
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends sig and waits; returns the exit code (None if it had to be SIGKILLed)."""
        if not self.proc or self.proc.poll() is not None:
            rc = self.proc.returncode if self.proc else None
            self._close_log()
            return rc
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._close_log()
        return rc

    def terminate_ok(self, testcase=None, timeout=30.0):
        """SIGTERM and assert a clean exit 0."""
        rc = self.stop(signal.SIGTERM, timeout)
        if rc != 0:
            msg = "kithd SIGTERM exit code %r (expected 0); output:\n%s" % (rc, self.log_tail())
            if testcase:
                testcase.fail(msg)
            raise AssertionError(msg)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def restart(self, timeout=READY_TIMEOUT):
        self.stop()
        return self.start(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.kill()
        if self.own_dir and not os.environ.get("KITH_TEST_KEEP"):
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if not os.environ.get("KITH_TEST_KEEP"):
            for p in self.logs:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        with _live_lock:
            if self in _live_servers:
                _live_servers.remove(self)

    # --- clients -------------------------------------------------------------------------------

    def api(self, sandbox=None, key=None):
        return Client(self, key or self.admin_key, sandbox)

    def raw(self, method, path, body=None, headers=None):
        return http_request(self.port, method, path, body, headers)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port


class _PortInUse(Exception):
    pass


def _cleanup_all():
    with _live_lock:
        servers = list(_live_servers)
    for s in servers:
        try:
            s.cleanup()
        except Exception:
            pass


atexit.register(_cleanup_all)


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):
        pass


# ------------------------------------------------------------------------------------------------
# unittest glue


class KithTestCase(unittest.TestCase):
    """One kithd per test class (started in setUpClass, stopped with SIGTERM in tearDownClass)."""

    server = None
    fixture_needed = False
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.server = KithServer().start()
        cls.admin = cls.server.api()
        cls.fx = Fixture(cls.admin) if cls.fixture_needed else None

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            try:
                if cls.server.alive():
                    rc = cls.server.stop()
                    if rc != 0:
                        sys.stderr.write("WARNING: kithd exit code %r on SIGTERM\n" % rc)
                _failed_logs.append(cls.server.log_tail(40))
            finally:
                cls.server.cleanup()
                cls.server = None

    @staticmethod
    def _healthy(srv):
        if not srv.alive():
            return False
        try:
            return http_request(srv.port, "GET", "/livez", timeout=5).status == 200
        except (OSError, http.client.HTTPException):
            return False

    def setUp(self):
        srv = type(self).server
        if srv is not None and srv.proc is not None and not self._healthy(srv):
            # The previous test crashed the shared kithd (and failed for it in tearDown): restart it
            # on the same data dir so that the remaining tests still say something.
            srv.kill()
            srv.start()

    def tearDown(self):
        srv = type(self).server
        if srv is not None and srv.proc is not None and not self._healthy(srv):
            try:
                srv.proc.wait(5)  # let a dying kithd finish its report
            except subprocess.TimeoutExpired:
                pass
            raise AssertionError("kithd died or stopped answering during this test (exit code %r); "
                                 "output:\n%s" % (srv.proc.returncode, srv.log_tail(40)))

    def new_server(self, **kw):
        s = KithServer(**kw)
        self.addCleanup(s.cleanup)
        return s.start()

    # --- assertions ------------------------------------------------------------------------------

    def assertStatus(self, resp, *codes):
        if resp.status not in codes:
            self.fail("expected HTTP %s, got %r" % ("/".join(map(str, codes)), resp))

    def assertProblem(self, resp, *codes):
        """A problem+json error (RFC 9457) with one of the given status codes."""
        self.assertStatus(resp, *codes)
        self.assertIn("application/problem+json", resp.content_type, "error must be problem+json: %r" % resp)
        j = resp.json
        self.assertIsInstance(j, dict, "problem body must be a JSON object: %r" % resp)
        for f in ("type", "title", "status", "detail"):
            self.assertIn(f, j, "problem body lacks %r: %r" % (f, resp))
        self.assertEqual(j["status"], resp.status, "problem status must equal the HTTP status: %r" % resp)
        return j

    def assertErrorPath(self, resp, path, name=None, prefix=False):
        """A 400 problem+json whose errors[] names `path` (a JSON pointer into xdmEntity). A parent
        path is accepted when its message names the missing field (`name`)."""
        j = self.assertProblem(resp, 400)
        errs = j.get("errors")
        self.assertIsInstance(errs, list, "validation problem must list errors[]: %r" % resp)
        self.assertTrue(errs, "errors[] must not be empty: %r" % resp)
        for e in errs:
            self.assertIn("path", e, "every error needs a path: %r" % resp)
            self.assertIn("message", e, "every error needs a message: %r" % resp)
        paths = [e.get("path") for e in errs]
        if path in paths:
            return j
        if prefix and any(isinstance(p, str) and p.startswith(path) for p in paths):
            return j
        if name:
            for e in errs:
                p = e.get("path") or ""
                if path.startswith(p) and name in (e.get("message") or ""):
                    return j
        self.fail("expected an error at path %r, got paths %r: %r" % (path, paths, resp))


_failed_logs = []


def main():
    """Runs the module's tests; prints unittest's summary; exits non-zero on failure."""
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    res = prog.result
    ok = res.wasSuccessful()
    if not ok and _failed_logs and os.environ.get("KITH_TEST_SHOW_LOGS", "1") != "0":
        sys.stderr.write("\n---- tail of kithd output ----\n%s\n" % "\n----\n".join(_failed_logs))
    _cleanup_all()
    sys.exit(0 if ok else 1)
