"""The Python conformance plugin's unit tests, on the SDK's native test host
(run by tests/run.sh: `python -m unittest discover -s plugins/python/conformance`)."""

import json
import unittest

import app  # noqa: F401  (registers the plugin class)
from wasmgate_plugin.testing import (
    TestHost,
    TestRequest,
    TestResponse,
    answer,
    logs,
    metrics,
    reset,
    set_kv_down,
    status,
)

CONFIG = {"request_headers": {"x-a": "1"}, "response_headers": {"x-b": "2"}, "counter": "hits"}


class Conformance(unittest.TestCase):
    def setUp(self):
        reset()

    def test_denies_by_header_with_a_problem(self):
        h = TestHost(CONFIG)
        a = answer(h.request_headers(TestRequest("GET", "/", {"x-deny": "1"})))
        self.assertEqual(a.status, 403)
        self.assertIn(("content-type", "application/problem+json"), a.headers)
        self.assertEqual(json.loads(a.body)["detail"], "denied by the python plugin")

    def test_edits_both_ways_and_counts(self):
        h = TestHost(CONFIG)
        for n in (1, 2):
            req = TestRequest()
            self.assertEqual(status(h.request_headers(req)), 200)
            self.assertEqual(req.header("x-a"), "1")
            resp = TestResponse(200)
            self.assertEqual(status(h.response_headers(req, resp)), 200)
            self.assertEqual(resp.header("x-b"), "2")
            self.assertEqual(resp.header("x-count"), str(n))
            self.assertEqual(resp.header("x-plugin-language"), "python")
        self.assertEqual(metrics()["requests"], 2)
        self.assertIn(("info", "request 2"), logs())

    def test_the_first_claim_wins(self):
        h = TestHost()
        for value, claimed in (("first", "yes"), ("second", "no")):
            req = TestRequest("GET", "/", {"x-claim": value})
            h.request_headers(req)
            resp = TestResponse(200)
            h.response_headers(req, resp)
            self.assertEqual(resp.header("x-claimed"), claimed)

    def test_reports_only_the_phases_it_implements(self):
        phases = TestHost().phases
        self.assertTrue(phases & type(phases).REQUEST_HEADERS)
        self.assertFalse(phases & type(phases).REQUEST_BODY)

    def test_the_body_phase_is_skipped_when_the_plugin_says_skip_body(self):
        h = TestHost()
        resp = TestResponse(200, {}, "four")
        h.response_headers(TestRequest("GET", "/"), resp)
        h.response_body(TestRequest("GET", "/"), resp)
        self.assertEqual(resp.header("x-body-bytes"), "4")
        req = TestRequest("GET", "/", {"x-skip-body": "1"})
        skipped = TestResponse(200, {}, "four")
        h.response_headers(req, skipped)
        h.response_body(req, skipped)
        self.assertIsNone(skipped.header("x-body-bytes"))

    def test_refuses_unknown_keys_and_wrong_kinds(self):
        with self.assertRaisesRegex(ValueError, "unknown key `colour`"):
            TestHost({"colour": "red"})
        with self.assertRaisesRegex(ValueError, "`counter`: expected a string"):
            TestHost({"counter": 5})

    def test_an_exception_is_logged_with_its_text_and_raised(self):
        h = TestHost()
        with self.assertRaises(RuntimeError):
            h.request_headers(TestRequest("GET", "/", {"x-raise": "boom"}))
        self.assertTrue(any("asked to raise: boom" in m for level, m in logs() if level == "error"))

    def test_a_store_outage_is_an_exception_the_plugin_does_not_catch(self):
        set_kv_down()
        h = TestHost(CONFIG)
        with self.assertRaises(Exception):
            h.request_headers(TestRequest())


if __name__ == "__main__":
    unittest.main()
