// `npm run dev`: the example on http://127.0.0.1:5173, with /api, /ws and /static proxied to
// the backend (`make run`, default http://127.0.0.1:8000; another with QW_BACKEND=http://host:port).
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const backend = process.env.QW_BACKEND ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  resolve: {
    // The package straight from its source, with this app's one copy of React.
    alias: { "@quantumworks/realtime-react": fileURLToPath(new URL("../src/index.js", import.meta.url)) },
    dedupe: ["react", "react-dom"],
  },
  server: {
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 5173),
    strictPort: true,
    proxy: {
      "/api": { target: backend, changeOrigin: true },
      "/static": { target: backend, changeOrigin: true },
      "/ws": {
        target: backend.replace(/^http/, "ws"),
        ws: true,
        changeOrigin: true,
        // The server refuses sockets from foreign browser origins (SPEC §5); through this
        // development proxy the page is the backend's own.
        configure: (proxy) => proxy.on("proxyReqWs", (request) => request.setHeader("origin", backend)),
      },
    },
  },
});
