// Compiles a JSON Schema with Ajv 8 in its default (strict) mode, plus ajv-formats for
// the formats JSON Schema itself defines, and validates instances against it.
//
//   node check.mjs SCHEMA.json INSTANCE.json...
//
// Prints one JSON line per instance: {"file": ..., "valid": bool, "errors": [...]}.
// Exit 2 when the schema does not compile (strict mode errors included).
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [schemaPath, ...instances] = process.argv.slice(2);
const ajv = new Ajv2020({ allErrors: true });
addFormats(ajv);
let validate;
try {
  validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")));
} catch (e) {
  console.error(`schema does not compile: ${e.message}`);
  process.exit(2);
}
for (const file of instances) {
  const valid = validate(JSON.parse(readFileSync(file, "utf8")));
  console.log(JSON.stringify({ file, valid, errors: validate.errors ?? [] }));
}
