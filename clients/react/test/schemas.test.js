import assert from "node:assert/strict";
import { test } from "node:test";
import { clientFrameProblems } from "../testing/schemas.js";

test("the frames the bindings send are checked against the document's client messages", () => {
  assert.deepEqual(clientFrameProblems({ type: "subscribe", channel: "task:7" }), []);
  assert.deepEqual(clientFrameProblems({ type: "chat_message", room_id: 3, content: "hi", client_msg_id: "c1" }), []);
  assert.deepEqual(clientFrameProblems({ type: "subscribe", channel: "task:x" }), [
    'subscribe/channel must match pattern "^(task|project|room):[1-9][0-9]*$": {"type":"subscribe","channel":"task:x"}',
  ]);
  assert.deepEqual(clientFrameProblems({ type: "read_receipt" }), [
    `read_receipt must have required property 'message_id': {"type":"read_receipt"}`,
  ]);
  const both = { type: "typing", receiver_id: 2, room_id: 3 };
  assert.ok(clientFrameProblems(both).some((p) => p.startsWith("typing must match exactly one schema in oneOf")));
  assert.deepEqual(clientFrameProblems({ type: "message_sent" }), [
    'no client message of type "message_sent" in asyncapi.yaml',
  ]);
});
