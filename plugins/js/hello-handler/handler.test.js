// The handler's logic under Node: its `fetch` listener gets a request as the gateway would
// pass it, and outbound `fetch` is replaced by a stand-in for the upstream.
import { test } from "node:test";
import assert from "node:assert/strict";

let listener;
globalThis.addEventListener = (type, f) => {
  assert.equal(type, "fetch");
  listener = f;
};
await import("./handler.js");

function dispatch(request) {
  return new Promise((resolve) => listener({ request, respondWith: (r) => resolve(r) }));
}

test("answers with what it was asked", async () => {
  const resp = await dispatch(new Request("http://api.test/hello?x=1", { method: "POST", body: "12345" }));
  assert.equal(resp.status, 200);
  assert.equal(resp.headers.get("x-handler"), "js");
  assert.deepEqual(await resp.json(), {
    handler: "js",
    method: "POST",
    path: "/hello?x=1",
    host: "api.test",
    body_bytes: 5,
  });
});

test("passes /fetch/ on to the upstream `backend`", async (t) => {
  const asked = [];
  t.mock.method(globalThis, "fetch", async (url) => {
    asked.push(url);
    return new Response("from backend", { status: 201, headers: { "content-type": "text/plain" } });
  });
  const resp = await dispatch(new Request("http://api.test/js/fetch/items/7?q=a"));
  assert.deepEqual(asked, ["http://backend/items/7?q=a"]);
  assert.equal(resp.status, 201);
  assert.equal(await resp.text(), "from backend");
});
