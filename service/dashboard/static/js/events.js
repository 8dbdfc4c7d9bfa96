// Server-sent events read with fetch, not EventSource: EventSource cannot send the Authorization header.

import { authHeaders, ensureOk } from "./api.js";

/**
 * Calls onEvent({event, data}) for each event of the stream at `path` (data parsed as JSON) until the
 * server ends the stream or `signal` aborts it. Comment lines (keep-alives) and `retry:` are skipped.
 */
export async function readEvents(path, onEvent, signal) {
  const response = await fetch(path, { headers: authHeaders({ Accept: "text/event-stream" }), signal });
  await ensureOk(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parse(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) onEvent(event);
    }
  }
}

function parse(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length > 0 ? { event, data: JSON.parse(data.join("\n")) } : null;
}
