// A route handler in JavaScript: a standard wasi:http component that answers requests itself,
// named by a route's `handler` instead of an upstream. It answers with JSON saying what it was
// asked; under /fetch/ it calls the upstream `backend` (listed in its definition's `http`) with
// the rest of the path and passes the answer on.

async function answer(request) {
  const url = new URL(request.url);
  const at = url.pathname.indexOf("/fetch/");
  if (at >= 0) {
    const upstream = await fetch(`http://backend/${url.pathname.slice(at + "/fetch/".length)}${url.search}`);
    const body = await upstream.text();
    return new Response(body, {
      status: upstream.status,
      headers: { "content-type": upstream.headers.get("content-type") ?? "text/plain", "x-handler": "js" },
    });
  }
  const body = JSON.stringify({
    handler: "js",
    method: request.method,
    path: url.pathname + url.search,
    host: url.host,
    body_bytes: (await request.arrayBuffer()).byteLength,
  });
  return new Response(body, { headers: { "content-type": "application/json", "x-handler": "js" } });
}

addEventListener("fetch", (event) => event.respondWith(answer(event.request)));
