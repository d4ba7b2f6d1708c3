// `npm run size`: what the package adds to an app, bundled and minified by esbuild with
// React left out (the app has its own), then gzipped.
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const result = await build({
  entryPoints: [new URL("../src/index.js", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "esm",
  external: ["react"],
  write: false,
});
const code = result.outputFiles[0].contents;
console.log(
  `@quantumworks/realtime-react: ${code.length} B minified, ${gzipSync(code, { level: 9 }).length} B min+gzip`,
);
