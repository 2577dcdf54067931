//! Route lookup cost as the route table grows: 10 → 10,000 routes of mixed kinds (exact, pattern,
//! prefix, host-bound). Run with `cargo bench -p wasmgate --bench router`. Prints ns per lookup;
//! a flat column is the point.

use std::hint::black_box;
use std::time::Instant;

use http::{HeaderMap, Method};
use wasmgate::router::{PathMatch, RequestView, RouteSpec, Router};

fn spec(i: usize) -> RouteSpec {
    let (hosts, path) = match i % 4 {
        0 => (vec![], PathMatch::Pattern(format!("/svc{i}/items"))),
        1 => (
            vec![],
            PathMatch::Pattern(format!("/svc{i}/users/{{id}}/orders/{{order}}")),
        ),
        2 => (vec![], PathMatch::Prefix(format!("/svc{i}/static"))),
        _ => (
            vec![format!("tenant{i}.example.com")],
            PathMatch::Prefix("/".into()),
        ),
    };
    RouteSpec {
        hosts,
        path,
        methods: if i.is_multiple_of(2) {
            vec![Method::GET]
        } else {
            vec![]
        },
        headers: vec![],
        query: vec![],
        priority: 0,
    }
}

fn main() {
    let headers = HeaderMap::new();
    println!(
        "{:>8} {:>14} {:>14}",
        "routes", "ns/lookup hit", "ns/lookup miss"
    );
    for n in [10, 100, 1_000, 10_000] {
        let router = Router::new((0..n).map(|i| (spec(i), i)));
        // Requests that hit routes spread over the whole table, and one that matches nothing.
        let hits: Vec<(String, String)> = (0..64)
            .map(|k| {
                let i = (k * 7919) % n;
                match i % 4 {
                    0 => ("api.example.com".into(), format!("/svc{i}/items")),
                    1 => (
                        "api.example.com".into(),
                        format!("/svc{i}/users/42/orders/7"),
                    ),
                    2 => (
                        "api.example.com".into(),
                        format!("/svc{i}/static/css/site.css"),
                    ),
                    _ => (format!("tenant{i}.example.com"), "/anything".into()),
                }
            })
            .collect();
        let iters = 200_000;
        let start = Instant::now();
        for k in 0..iters {
            let (host, path) = &hits[k % hits.len()];
            let m = router.lookup(&RequestView {
                host,
                path,
                query: None,
                method: &Method::GET,
                headers: &headers,
            });
            assert!(m.is_some(), "{host}{path}");
            black_box(m);
        }
        let hit_ns = start.elapsed().as_nanos() as f64 / iters as f64;
        let start = Instant::now();
        for _ in 0..iters {
            black_box(router.lookup(&RequestView {
                host: "api.example.com",
                path: "/nothing/here/at/all",
                query: None,
                method: &Method::GET,
                headers: &headers,
            }));
        }
        let miss_ns = start.elapsed().as_nanos() as f64 / iters as f64;
        println!("{n:>8} {hit_ns:>14.1} {miss_ns:>14.1}");
    }
}
