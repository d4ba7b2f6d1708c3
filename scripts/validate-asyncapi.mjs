// `make lint`: docs/asyncapi.yaml must be a valid AsyncAPI document, checked by the
// reference parser (@asyncapi/parser, pinned in package-lock.json). Errors fail; warnings print.
import { readFile } from "node:fs/promises";
import { DiagnosticSeverity, Parser } from "@asyncapi/parser";

const path = process.argv[2] ?? "docs/asyncapi.yaml";
const diagnostics = await new Parser().validate(await readFile(path, "utf8"), { source: path });
const severity = ["error", "warning", "info", "hint"];
for (const d of diagnostics) {
  const where = d.path.join("/") || "(document)";
  console.log(`${path}: ${severity[d.severity]} ${d.code}: ${d.message} at ${where}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).length;
if (errors) {
  console.error(`${path}: ${errors} error(s)`);
  process.exit(1);
}
console.log(`${path}: valid AsyncAPI ${diagnostics.length ? `(${diagnostics.length} note(s))` : ""}`);
