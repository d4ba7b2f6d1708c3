// src/frames.d.ts from docs/asyncapi.yaml: one interface per frame, and the unions
// ServerFrame / ClientFrame. `npm run types` writes it; test/types.test.js fails when
// the shipped file differs from what the document generates now.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";
import { parse } from "yaml";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
export const DOCUMENT = here("../../../docs/asyncapi.yaml");
export const OUTPUT = here("../src/frames.d.ts");

const pascal = (name) => name[0].toUpperCase() + name.slice(1);
const resolve = (document, ref) =>
  ref
    .replace(/^#\//, "")
    .split("/")
    .reduce((node, part) => node[part], document);

/** The component message keys of every operation with this action, in document order. */
function messagesOf(document, action) {
  const keys = [];
  for (const operation of Object.values(document.operations)) {
    if (operation.action !== action) continue;
    for (const { $ref } of operation.messages) {
      const key = resolve(document, $ref).$ref.split("/").at(-1);
      if (!keys.includes(key)) keys.push(key);
    }
  }
  return keys;
}

function forTypes(schema) {
  // `oneOf` of bare `required` branches (exactly one of receiver_id / room_id) says nothing
  // a type can: the properties stay optional. References point at `definitions`.
  const json = JSON.stringify(schema, (key, value) => {
    if (key === "oneOf" && Array.isArray(value) && value.every((branch) => !branch.type && !branch.$ref)) {
      return undefined;
    }
    if (key === "$ref") return value.replace("#/components/schemas/", "#/definitions/");
    return value;
  });
  return JSON.parse(json);
}

export async function generate() {
  const document = parse(await readFile(DOCUMENT, "utf8"));
  const server = messagesOf(document, "send");
  const client = messagesOf(document, "receive");
  const definitions = forTypes(document.components.schemas);
  for (const key of [...server, ...client]) {
    const message = document.components.messages[key];
    definitions[`${pascal(key)}Frame`] = {
      ...forTypes(message.payload),
      title: `${pascal(key)}Frame`,
      description: message.summary ?? message.title,
    };
  }
  const root = {
    title: "QWFrames",
    type: "object",
    additionalProperties: false,
    properties: Object.fromEntries(Object.keys(definitions).map((name) => [name, { $ref: `#/definitions/${name}` }])),
    definitions,
  };
  let text = await compile(root, "QWFrames", {
    bannerComment:
      "// Generated from docs/asyncapi.yaml by scripts/gen-types.mjs (`npm run types`); do not edit.\n" +
      "// The frames of the QuantumWorks Realtime socket protocol (SPEC §5, §10, §11).",
    additionalProperties: false,
    format: false,
    ignoreMinAndMaxItems: true,
    unreachableDefinitions: true,
  });
  // The root is only a carrier of the definitions.
  text = text.replace(/export interface QWFrames \{[\s\S]*?\n\}\n/, "");
  const union = (keys) => keys.map((key) => `  | ${pascal(key)}Frame`).join("\n");
  text += `\n/** Every frame the server sends. */\nexport type ServerFrame =\n${union(server)};\n`;
  text += `\n/** Every frame a client may send. */\nexport type ClientFrame =\n${union(client)};\n`;
  return text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(OUTPUT, await generate());
  console.log(`wrote ${OUTPUT}`);
}
