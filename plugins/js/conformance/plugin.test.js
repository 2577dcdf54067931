// The JavaScript conformance plugin's unit tests, on the SDK's native test host
// (run by tests/run.sh: node --import plugin-sdk/js/testing/register.js --test plugins/js/conformance/).
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import "./plugin.js";
import { TestHost, TestRequest, TestResponse, answer, logs, metrics, reset, setKvDown, status } from "wasmgate-plugin/testing";

const CONFIG = { request_headers: { "x-a": "1" }, response_headers: { "x-b": "2" }, counter: "hits" };

beforeEach(reset);

test("denies by header with a problem", () => {
  const a = answer(new TestHost(CONFIG).requestHeaders(new TestRequest("GET", "/", { "x-deny": "1" })));
  assert.equal(a.status, 403);
  assert.deepEqual(a.headers[0], ["content-type", "application/problem+json"]);
  assert.equal(JSON.parse(new TextDecoder().decode(a.body)).detail, "denied by the js plugin");
});

test("edits both ways and counts", () => {
  const h = new TestHost(CONFIG);
  for (const n of [1, 2]) {
    const req = new TestRequest();
    assert.equal(status(h.requestHeaders(req)), 200);
    assert.equal(req.header("x-a"), "1");
    const resp = new TestResponse(200);
    assert.equal(status(h.responseHeaders(req, resp)), 200);
    assert.equal(resp.header("x-b"), "2");
    assert.equal(resp.header("x-count"), String(n));
    assert.equal(resp.header("x-plugin-language"), "js");
  }
  assert.equal(metrics().requests, 2);
  assert.ok(logs().some(([level, m]) => level === "info" && m === "request 2"));
});

test("the first claim wins (kv.compareAndSwap)", () => {
  const h = new TestHost();
  for (const [value, claimed] of [["first", "yes"], ["second", "no"]]) {
    const req = new TestRequest("GET", "/", { "x-claim": value });
    h.requestHeaders(req);
    const resp = new TestResponse(200);
    h.responseHeaders(req, resp);
    assert.equal(resp.header("x-claimed"), claimed);
  }
});

test("reports only the phases it implements", () => {
  assert.deepEqual(new TestHost().phases, { requestHeaders: true, responseHeaders: true, responseBody: true });
});

test("the body phase is skipped when the plugin says skipBody", () => {
  const h = new TestHost();
  const resp = new TestResponse(200, {}, "four");
  h.responseHeaders(new TestRequest("GET", "/"), resp);
  h.responseBody(new TestRequest("GET", "/"), resp);
  assert.equal(resp.header("x-body-bytes"), "4");
  const skipped = new TestResponse(200, {}, "four");
  const req = new TestRequest("GET", "/", { "x-skip-body": "1" });
  h.responseHeaders(req, skipped);
  h.responseBody(req, skipped);
  assert.equal(skipped.header("x-body-bytes"), undefined);
});

test("refuses unknown keys and wrong kinds", () => {
  assert.throws(() => new TestHost({ colour: "red" }), /unknown key `colour`/);
  assert.throws(() => new TestHost({ counter: 5 }), /`counter`: expected a string/);
});

test("an exception is logged with its text and thrown", () => {
  const h = new TestHost();
  assert.throws(() => h.requestHeaders(new TestRequest("GET", "/", { "x-raise": "boom" })), /asked to raise: boom/);
  assert.ok(logs().some(([level, m]) => level === "error" && m.includes("asked to raise: boom")));
});

test("a store outage is an exception the plugin does not catch", () => {
  setKvDown();
  assert.throws(() => new TestHost(CONFIG).requestHeaders(new TestRequest()));
});
