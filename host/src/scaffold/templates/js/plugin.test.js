import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import "./plugin.js";
import { TestHost, TestRequest, TestResponse, reset, status } from "wasmgate-plugin/testing";

beforeEach(reset);

test("denies or marks both ways", () => {
  const h = new TestHost({});
  assert.equal(status(h.requestHeaders(new TestRequest("GET", "/", { "x-deny": "1" }))), 403);
  const req = new TestRequest();
  assert.equal(status(h.requestHeaders(req)), 200);
  assert.equal(req.header("x-{name}"), "seen");
  const resp = new TestResponse(200);
  h.responseHeaders(req, resp);
  assert.equal(resp.header("x-{name}"), "seen");
  assert.throws(() => new TestHost({ colour: "red" }));
});
