// Parse every diagram given as a JSON array of strings on stdin with Mermaid's own parser;
// print one {ok, type} or {ok: false, error} per diagram as a JSON array.
// The flowchart parser sanitises labels with DOMPurify, which needs a window: jsdom gives one.
import { JSDOM } from "jsdom";

const { window } = new JSDOM("");
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import("mermaid");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const text of JSON.parse(input)) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ ok: true, type: parsed.diagramType });
  } catch (error) {
    results.push({ ok: false, error: String(error.message ?? error) });
  }
}
process.stdout.write(JSON.stringify(results));
