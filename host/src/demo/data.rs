//! The demo backend's sample data: the services of the seed's profile page (a user, their
//! orders, wishlist and reviews under `/users/{id}...`) and an OAuth 2.0 introspection
//! endpoint that knows one opaque token. Made up from the id, so any id answers.

use http::HeaderValue;
use serde_json::{Value, json};

/// The introspection endpoint's path (RFC 7662), for client `gateway` with secret `demo-secret`.
pub const INTROSPECT: &str = "/oauth/introspect";
/// The one token the introspection endpoint calls active.
const TOKEN: &str = "demo-opaque-token";
/// `Basic` credentials of client `gateway`, secret `demo-secret`.
const CLIENT: &str = "Basic Z2F0ZXdheTpkZW1vLXNlY3JldA==";

/// The answer for `/users/{id}`, `/users/{id}/orders`, `/users/{id}/wishlist` or
/// `/users/{id}/reviews`; `None` for any other path.
pub fn users(path: &str) -> Option<Value> {
    let rest = path.strip_prefix("/users/")?;
    let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
    let n: u64 = id.parse().ok()?;
    Some(match what {
        "" => json!({ "id": n, "name": format!("User {n}"), "since": "2024-01-15" }),
        "orders" => (1..=8)
            .map(|i| json!({ "id": n * 100 + i, "total": 10 * i + n % 10 }))
            .collect(),
        "wishlist" => json!(["headphones", "desk lamp", "notebook"]),
        "reviews" => json!([
            { "product": "kettle", "rating": 5 },
            { "product": "mug", "rating": 4 },
            { "product": "toaster", "rating": 3 },
        ]),
        _ => return None,
    })
}

/// The answer for `/v2/users/{id}`: version 2 of the users service, which merged v1's
/// `firstName` and `lastName` into `fullName`; `None` for any other path.
pub fn users_v2(path: &str) -> Option<Value> {
    let n: u64 = path.strip_prefix("/v2/users/")?.parse().ok()?;
    let names = [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Brewster Hopper",
        "Edsger Dijkstra",
    ];
    let full = names
        .get((n % 4) as usize)
        .copied()
        .unwrap_or("Ada Lovelace");
    Some(json!({
        "id": n,
        "fullName": full,
        "email": format!("user{n}@example.com"),
        "createdAt": "2024-01-15T09:30:00Z",
    }))
}

/// The answer for `/products/{id}` (a price in its currency and a date, for the localization
/// example): `Some(Ok(product))` for a numeric id, `Some(Err(problem))` for any other id (a
/// 404 problem, as a real catalogue would answer), `None` for any other path.
pub fn products(path: &str) -> Option<Result<Value, Value>> {
    let id = path.strip_prefix("/products/")?;
    let Ok(n) = id.parse::<u64>() else {
        return Some(Err(json!({
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": format!("there is no product `{id}`"),
        })));
    };
    Some(Ok(json!({
        "id": n,
        "name": format!("Kettle {n}"),
        "price": 1234.5,
        "currency": "EUR",
        "available_from": "2024-03-01",
    })))
}

/// RFC 7662: `{"active": true, ...}` for the demo token asked by the demo client, else
/// `{"active": false}`; a wrong client gets `invalid_client`.
pub fn introspect(basic: Option<&HeaderValue>, form: &[u8]) -> Value {
    if basic.map(HeaderValue::as_bytes) != Some(CLIENT.as_bytes()) {
        return json!({ "error": "invalid_client" });
    }
    let asked = form
        .split(|b| *b == b'&')
        .any(|pair| pair == format!("token={TOKEN}").as_bytes());
    if !asked {
        return json!({ "active": false });
    }
    json!({
        "active": true,
        "sub": "partner-42",
        "client_id": "partner-app",
        "scope": "orders:read",
        // 2100-01-01: the demo token does not expire.
        "exp": 4_102_444_800u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_services_answer_any_numeric_id() {
        assert_eq!(
            users("/users/7").map(|u| u["name"].clone()),
            Some(json!("User 7"))
        );
        assert_eq!(
            users("/users/7/orders").map(|o| o.as_array().map(Vec::len)),
            Some(Some(8))
        );
        assert!(users("/users/x").is_none());
        assert!(users("/users/7/other").is_none());
        assert!(users("/hello").is_none());
        assert_eq!(
            users_v2("/v2/users/6").map(|u| u["fullName"].clone()),
            Some(json!("Grace Brewster Hopper"))
        );
        assert!(users_v2("/v2/users/x").is_none());
        assert!(matches!(products("/products/3"), Some(Ok(p)) if p["price"] == 1234.5));
        assert!(matches!(products("/products/x"), Some(Err(p)) if p["status"] == 404));
    }

    #[test]
    fn introspection_knows_one_token_for_one_client() {
        let client = HeaderValue::from_static(CLIENT);
        let active = introspect(
            Some(&client),
            b"token=demo-opaque-token&token_type_hint=access_token",
        );
        assert_eq!(active["active"], true);
        assert_eq!(introspect(Some(&client), b"token=other")["active"], false);
        let wrong = HeaderValue::from_static("Basic eDp5");
        assert_eq!(
            introspect(Some(&wrong), b"token=demo-opaque-token")["error"],
            "invalid_client"
        );
    }
}
