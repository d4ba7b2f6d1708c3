import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { OUTPUT, generate } from "../scripts/gen-types.mjs";

test("the shipped frame types are what docs/asyncapi.yaml generates now", async () => {
  const shipped = await readFile(OUTPUT, "utf8");
  assert.equal(shipped, await generate(), "run `npm run types` in clients/react");
});

test("the .d.ts files compile and describe the hooks and the frames", () => {
  const file = fileURLToPath(new URL("../testing/usage.tsx", import.meta.url));
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    jsx: ts.JsxEmit.React,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: false,
    types: [],
  });
  const problems = ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
  assert.deepEqual(problems, []);
});
