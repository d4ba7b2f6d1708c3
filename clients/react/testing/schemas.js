// The frames a client may send, from docs/asyncapi.yaml: the fake socket checks every
// frame the bindings send against the schema of its type (ajv, draft-07 like the document).
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { parse } from "yaml";

const document = parse(readFileSync(new URL("../../../docs/asyncapi.yaml", import.meta.url), "utf8"));
const resolve = (ref) =>
  ref
    .replace(/^#\//, "")
    .split("/")
    .reduce((node, part) => node[part], document);

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(document, "asyncapi");

const validators = new Map();
for (const operation of Object.values(document.operations)) {
  if (operation.action !== "receive") continue;
  for (const { $ref } of operation.messages) {
    const ref = resolve($ref).$ref;
    const type = resolve(ref).payload.properties.type.const;
    validators.set(type, ajv.compile({ $ref: `asyncapi${ref}/payload` }));
  }
}

/** Why a frame a client sends does not match the document (empty: it does). */
export function clientFrameProblems(frame) {
  const validate = validators.get(frame?.type);
  if (!validate) return [`no client message of type ${JSON.stringify(frame?.type)} in asyncapi.yaml`];
  if (validate(frame)) return [];
  return validate.errors.map((e) => `${frame.type}${e.instancePath} ${e.message}: ${JSON.stringify(frame)}`);
}
