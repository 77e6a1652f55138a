// Usage: node validate.mjs openapi.json — prints the validator's verdict as JSON, exits 1 when invalid.
import { Validator } from "@seriousme/openapi-schema-validator";
import { readFileSync } from "node:fs";

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const validator = new Validator();
const res = await validator.validate(doc);
const out = { valid: res.valid, version: validator.version, errors: res.errors || null };
if (res.valid) {
  // Every $ref must resolve: the validator can dereference the whole document.
  try {
    validator.resolveRefs();
    out.refsResolved = true;
  } catch (e) {
    out.valid = false;
    out.errors = String(e);
  }
}
console.log(JSON.stringify(out));
process.exit(out.valid ? 0 : 1);
