import unittest

import app  # noqa: F401  (registers the plugin class)
from wasmgate_plugin.testing import TestHost, TestRequest, TestResponse, reset, status


class Test(unittest.TestCase):
    def setUp(self):
        reset()

    def test_denies_or_marks_both_ways(self):
        h = TestHost({})
        self.assertEqual(status(h.request_headers(TestRequest("GET", "/", {"x-deny": "1"}))), 403)
        req = TestRequest()
        self.assertEqual(status(h.request_headers(req)), 200)
        self.assertEqual(req.header("x-{name}"), "seen")
        resp = TestResponse(200)
        h.response_headers(req, resp)
        self.assertEqual(resp.header("x-{name}"), "seen")
        with self.assertRaises(ValueError):
            TestHost({"colour": "red"})


if __name__ == "__main__":
    unittest.main()
