//! The Redis backend: what several gateway instances share (rate-limit counters, quotas,
//! revocations). Connections are made lazily and remade after a failure, so Redis may be down at
//! start or go away later: every operation is bounded by the configured timeout and fails with
//! `Unavailable` meanwhile, and the plugins decide what that means for a request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::StoreError;

pub struct RedisStore {
    pool: Vec<ConnectionManager>,
    next: AtomicUsize,
    timeout: Duration,
    prefix: String,
    incr: redis::Script,
    cas: redis::Script,
    breaker: Breaker,
}

/// While Redis is known to be down, calls fail at once instead of each waiting out the timeout:
/// one call per `RETRY` goes through as a probe, and the first success closes the breaker.
struct Breaker {
    start: Instant,
    /// Milliseconds since `start` until which calls fail fast; 0 while Redis answers.
    open_until: AtomicU64,
}

const RETRY: Duration = Duration::from_millis(500);

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this call may go to Redis: always while closed; once per `RETRY` while open.
    fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + retry_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn trip(&self) {
        let was = self
            .open_until
            .swap(self.now_ms() + retry_ms(), Ordering::Relaxed);
        if was == 0 {
            tracing::warn!("redis is unreachable: store calls fail fast, retrying every {RETRY:?}");
        }
    }

    fn reset(&self) {
        if self.open_until.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("redis answers again");
        }
    }
}

fn retry_ms() -> u64 {
    RETRY.as_millis() as u64
}

/// INCRBY, and a TTL for a key that has none yet (one that INCRBY just created), atomically.
const INCR: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v";

/// SET when the key holds ARGV[2] (ARGV[1] = '1') or is missing (ARGV[1] = '0'), with a TTL
/// in ms when ARGV[4] is not empty; 1 when it set.
const CAS: &str = r"
local v = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if v then return 0 end
elseif v ~= ARGV[2] then
  return 0
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1";

impl RedisStore {
    /// Sets up `pool_size` connections to `url`; none is opened before its first use.
    pub fn new(
        url: &str,
        pool_size: usize,
        timeout: Duration,
        connect_timeout: Duration,
        prefix: &str,
    ) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Invalid(url_error(&e)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let pool = (0..pool_size.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid(format!("redis: {e}")))?;
        Ok(RedisStore {
            pool,
            next: AtomicUsize::new(0),
            timeout,
            prefix: prefix.to_string(),
            incr: redis::Script::new(INCR),
            cas: redis::Script::new(CAS),
            breaker: Breaker {
                start: Instant::now(),
                open_until: AtomicU64::new(0),
            },
        })
    }

    /// Whether `url` is one the client can use (checked by `wasmgate check` and at reload).
    pub fn check_url(url: &str) -> Result<(), String> {
        redis::Client::open(url)
            .map(drop)
            .map_err(|e| url_error(&e))
    }

    /// Redis answered the last call (no outage is known).
    pub fn available(&self) -> bool {
        self.breaker.open_until.load(Ordering::Relaxed) == 0
    }

    fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        self.pool[i].clone()
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one operation within the timeout; any failure means "unavailable now".
    async fn run<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        if !self.breaker.admit() {
            return Err(StoreError::Unavailable(
                "redis is down (failing fast until it answers again)".into(),
            ));
        }
        let result = match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_outage(&e) => Err(StoreError::Unavailable(e.to_string())),
            // WRONGTYPE, "not an integer", ...: the caller's misuse, not an outage.
            Ok(Err(e)) => Err(StoreError::Invalid(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from redis within {:?}",
                self.timeout
            ))),
        };
        match &result {
            Err(StoreError::Unavailable(_)) => self.breaker.trip(),
            _ => self.breaker.reset(),
        }
        result
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn();
        let k = self.key(key);
        self.run(async move { redis::cmd("GET").arg(k).query_async(&mut c).await })
            .await
    }

    pub async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut c = self.conn();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(t) = ttl {
            cmd.arg("PX").arg(millis(t));
        }
        self.run(async move { cmd.query_async::<()>(&mut c).await })
            .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.conn();
        let k = self.key(key);
        self.run(async move { redis::cmd("DEL").arg(k).query_async::<()>(&mut c).await })
            .await
    }

    pub async fn incr(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StoreError> {
        let mut c = self.conn();
        let mut inv = self.incr.key(self.key(key));
        inv.arg(delta)
            .arg(ttl.map_or_else(String::new, |t| millis(t).to_string()));
        self.run(async move { inv.invoke_async(&mut c).await })
            .await
    }

    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn();
        let mut inv = self.cas.key(self.key(key));
        inv.arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(ttl.map_or_else(String::new, |t| millis(t).to_string()));
        self.run(async move { inv.invoke_async::<i64>(&mut c).await })
            .await
            .map(|set| set == 1)
    }
}

/// The parse error alone: the URL may hold a password, which must not reach logs.
fn url_error(e: &redis::RedisError) -> String {
    format!(
        "not a valid redis URL ({}); write redis://[user:password@]host:port[/db]",
        e.detail().unwrap_or("unparseable")
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn is_outage(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}
