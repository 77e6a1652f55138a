"""/openapi.json: OpenAPI 3.1 generated from the route table. Every route of src/http/routes.def is in
the document with its request and response schemas (a route without an entry in src/http/openapi.def
fails here) and its query parameters (src/http/query.def: every parameter a handler's source reads
must be listed for one of the handlers of its file; kithd built with assertions also aborts when a
handler reads one its route does not list), and the document passes a maintained OpenAPI 3.1
validator from npm (@seriousme/openapi-schema-validator, installed into the build directory)."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import kithtest as kt

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KITH_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
NPM = shutil.which("npm")
NODE = shutil.which("node")
METHODS = {"M_GET": "get", "M_POST": "post", "M_PUT": "put", "M_PATCH": "patch", "M_DELETE": "delete"}


def routes():
    out = []
    with open(os.path.join(SRC, "src", "http", "routes.def")) as f:
        for line in f:
            m = re.match(r'X\(([A-Z_| ]+), "([^"]+)", (\w+),', line)
            if m:
                methods = [METHODS[x.strip()] for x in m.group(1).split("|") if x.strip() in METHODS]
                out.append((methods, m.group(2).replace("{*", "{"), m.group(3)))
    return out


def query_reads():
    """{source file: set of query parameter names its code reads}: literal names passed to http_query
    and to the file's helpers that pass their `name` argument on to http_query."""
    out = {}
    for path in sorted(glob.glob(os.path.join(SRC, "src", "http", "h_*.c"))):
        text = open(path).read()
        helpers = set(re.findall(r"^static \w+ \*?(\w+)\(kith_req \*r, const char \*name[,)][^{]*\{"
                                 r"(?:(?!^\}).)*?http_query\(r, name\)", text, re.M | re.S))
        names = set()
        for args in re.findall(r"http_query\(r, ([^()]*)\)", text):  # a literal, or a ?: of two
            names |= set(re.findall(r'"([^"]+)"', args))
        for h in helpers:
            names |= set(re.findall(r"\b%s\(r, \"([^\"]+)\"" % h, text))
        names |= set(re.findall(r"MHD_get_connection_values\(r->conn, MHD_GET_ARGUMENT_KIND, (\w+)", text)
                     and re.findall(r'strcmp\(key, "([^"]+)"\)', text))
        out[os.path.basename(path)] = names
    return out


def handler_files():
    out = {}
    for path in glob.glob(os.path.join(SRC, "src", "http", "h_*.c")):
        for h in re.findall(r"^int (h_\w+)\(kith_req \*r\)", open(path).read(), re.M):
            out[h] = os.path.basename(path)
    return out


class OpenApiTest(kt.KithTestCase):

    def doc(self):
        r = self.server.raw("GET", "/openapi.json")
        self.assertStatus(r, 200)
        return r.json

    def test_every_route_is_documented(self):
        doc = self.doc()
        self.assertEqual(doc["openapi"], "3.1.0")
        self.assertEqual(doc.get("x-kith-undocumented"), [],
                         "routes without request/response schemas in src/http/openapi.def")
        rs = routes()
        self.assertGreater(len(rs), 50)
        schemas = doc["components"]["schemas"]
        for methods, path, handler in rs:
            self.assertTrue(path in doc["paths"], "missing path %s (%s)" % (path, handler))
            for m in methods:
                op = doc["paths"][path].get(m)
                self.assertIsNotNone(op, "%s %s (%s)" % (m, path, handler))
                self.assertIn("2XX", op["responses"])
                self.assertIn("default", op["responses"])
                for part in [op.get("requestBody", {})] + [op["responses"]["2XX"]]:
                    for media in part.get("content", {}).values():
                        ref = media["schema"]["$ref"]
                        self.assertIn(ref.rsplit("/", 1)[1], schemas, "%s %s: %s" % (m, path, ref))

    def test_query_parameters(self):
        doc = self.doc()
        by_handler = {}
        for methods, path, handler in routes():
            for m in methods:
                op = doc["paths"][path][m]
                names = [p["name"] for p in op["parameters"] if p["in"] == "query"]
                self.assertEqual(len(names), len(set(names)), "%s %s: a parameter twice" % (m, path))
                for p in op["parameters"]:
                    self.assertIn("schema", p, "%s %s: %s" % (m, path, p["name"]))
                    self.assertIn(p["schema"].get("type", "enum" if "enum" in p["schema"] else
                                                  "const" if "const" in p["schema"] else None),
                                  ("string", "integer", "boolean", "array", "enum", "const"),
                                  "%s %s: %s has no type" % (m, path, p["name"]))
                by_handler.setdefault(handler, set()).update(names)
        files = handler_files()
        documented = {}
        for h, names in by_handler.items():
            documented.setdefault(files.get(h), set()).update(names)
        reads = query_reads()
        self.assertIn("orderby", reads["h_profile.c"])      # the scan itself works
        self.assertIn("heartbeat", reads["h_stream.c"])     # through a helper
        self.assertIn("property", reads["h_profile.c"])     # through MHD's iteration
        for f, names in reads.items():
            missing = names - documented.get(f, set())
            self.assertEqual(missing, set(), "%s reads query parameters src/http/query.def does not "
                             "list for any of its handlers" % f)
        # the profile access route, the one most clients use
        op = doc["paths"]["/data/core/ups/access/entities"]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        for name in ("schema.name", "entityId", "entityIdNS", "mergePolicyId", "fields", "withCA",
                     "startTime", "endTime", "orderby", "limit", "start", "property",
                     "relatedSchema.name", "relatedEntityId", "relatedEntityIdNS"):
            self.assertIn(name, params)
        self.assertTrue(params["schema.name"]["required"])
        self.assertEqual(params["limit"]["schema"]["type"], "integer")
        self.assertEqual(params["property"]["schema"]["type"], "array")
        self.assertTrue(params["property"]["explode"])
        mp = {p["name"] for p in doc["paths"]["/data/core/ups/config/mergePolicies"]["get"]["parameters"]}
        self.assertTrue({"limit", "start", "page", "schema.name", "default", "orderBy"} <= mp, mp)

    def test_bodies_for_writes(self):
        doc = self.doc()
        for path, item in doc["paths"].items():
            for m, op in item.items():
                if m in ("put", "patch"):
                    self.assertIn("requestBody", op, "%s %s needs a request schema" % (m, path))

    def test_problem_schema_matches_a_real_error(self):
        doc = self.doc()
        problem = doc["components"]["schemas"]["Problem"]
        r = self.server.raw("GET", "/no/such/route")
        self.assertStatus(r, 404)
        for key in problem["required"]:
            self.assertIn(key, r.json)

    @unittest.skipIf(not NPM or not NODE, "npm/node not installed: run scripts/deps.sh")
    def test_validator_from_npm(self):
        base = os.path.join(os.path.dirname(os.path.abspath(kt.KITHD)), "openapi-check")
        os.makedirs(base, exist_ok=True)
        for name in ("package.json", "validate.mjs"):
            shutil.copy(os.path.join(HERE, "openapi", name), os.path.join(base, name))
        if not os.path.isdir(os.path.join(base, "node_modules", "@seriousme", "openapi-schema-validator")):
            r = subprocess.run([NPM, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=base,
                               capture_output=True, text=True, timeout=240)
            self.assertEqual(r.returncode, 0, "npm install failed:\n%s\n%s" % (r.stdout, r.stderr))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(self.doc(), f)
            path = f.name
        try:
            r = subprocess.run([NODE, os.path.join(base, "validate.mjs"), path], cwd=base,
                               capture_output=True, text=True, timeout=60)
        finally:
            os.unlink(path)
        self.assertEqual(r.returncode, 0, "OpenAPI validation failed:\n%s\n%s" % (r.stdout, r.stderr))
        verdict = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertTrue(verdict["valid"])
        self.assertEqual(verdict["version"], "3.1")


if __name__ == "__main__":
    kt.main()
