// A DOM for React Testing Library under `node --test`: imported first by every test file.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>", {
  url: process.env.QW_E2E_HTTP ?? "http://localhost/",
});
const { window } = dom;
for (const name of [
  "window",
  "document",
  "navigator",
  "location",
  "HTMLElement",
  "Node",
  "WebSocket",
  "MutationObserver",
  "getComputedStyle",
]) {
  if (name === "navigator") {
    Object.defineProperty(globalThis, "navigator", { value: window.navigator, configurable: true });
  } else globalThis[name] = name === "window" ? window : window[name];
}
globalThis.IS_REACT_ACT_ENVIRONMENT = true;
