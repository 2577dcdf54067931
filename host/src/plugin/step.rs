//! One entry of a route's chain: a module with its route-specific config, and the pool of live
//! instances that already ran `init` with that config.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc;

use super::bindings::types::LogEntry;
use super::bindings::{Action, Phases};
use super::error::{CallError, Failure};
use super::exchange::Exchange;
use super::idle::Idle;
use super::instance::{Live, Phase};
use super::module::Module;
use super::settings::Env;
use crate::telemetry::metrics::counting_requests;
use crate::telemetry::plugins::CallStats;

pub struct Step {
    pub route: Arc<str>,
    pub module: Arc<Module>,
    pub env: Arc<Env>,
    pub config_json: String,
    pub phases: Phases,
    idle: Idle<Live>,
    /// The log phase's queue, when the plugin has one (see [`log_worker`]).
    log: Option<mpsc::Sender<LogEntry>>,
    /// By phase, resolved at the phase's first call.
    stats: [OnceLock<CallStats>; 4],
    /// Calls and failed calls so far, for the admin's `/plugins` (metrics on or off).
    calls: AtomicU64,
    failures: AtomicU64,
}

/// Log entries waiting for a plugin's log phase; beyond this they are dropped and counted.
const LOG_QUEUE: usize = 4096;

impl Step {
    /// Starts a first instance, which runs `init`: a config the plugin refuses fails here, at
    /// load, never on a request.
    pub async fn new(
        route: Arc<str>,
        module: Arc<Module>,
        env: Arc<Env>,
        config_json: String,
    ) -> Result<Step, CallError> {
        let (live, phases) = module.start(&env, &config_json).await?;
        let idle = Idle::new(&env);
        idle.give_back(live);
        let log = phases.contains(Phases::LOG).then(|| {
            log_worker(
                route.clone(),
                module.clone(),
                env.clone(),
                config_json.clone(),
            )
        });
        Ok(Step {
            route,
            module,
            env,
            config_json,
            phases,
            idle,
            log,
            stats: Default::default(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.env.name
    }

    /// Calls so far, and how many of them failed.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Live instances kept for the next calls.
    pub fn idle_instances(&self) -> usize {
        self.idle.count()
    }

    /// Runs `phase` on a pooled (or new) instance. An instance that failed is dropped, so the
    /// next call starts from a fresh one.
    pub async fn call(
        &self,
        phase: Phase,
        ex: Box<Exchange>,
    ) -> (Box<Exchange>, Result<Action, Failure>) {
        let mut live = match self.instance().await {
            Ok(l) => l,
            Err(failure) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.failures.fetch_add(1, Ordering::Relaxed);
                return (ex, Err(failure));
            }
        };
        let started = counting_requests().then(Instant::now);
        let span = ex.trace.as_ref().and_then(|t| t.begin());
        let (ex, result) = live.call(phase, ex).await;
        if let (Some(begun), Some(trace)) = (span, &ex.trace) {
            let failure = result.as_ref().err().map(ToString::to_string);
            trace.plugin_call(begun, self.name(), &self.route, phase.name(), failure);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(started) = started {
            self.stats[phase as usize]
                .get_or_init(|| CallStats::new(self.name(), &self.route, phase.name()))
                .record(started.elapsed());
        }
        if result.is_ok() {
            self.idle.give_back(live);
        }
        (ex, result)
    }

    /// Queues `entry` for the log phase; never waits.
    pub fn log(&self, entry: LogEntry) {
        let Some(tx) = &self.log else { return };
        if tx.try_send(entry).is_err() {
            metrics::counter!(
                "wasmgate_plugin_log_dropped_total",
                "plugin" => self.name().to_string(),
                "route" => self.route.to_string(),
            )
            .increment(1);
        }
    }

    async fn instance(&self) -> Result<Live, Failure> {
        if let Some(l) = self.idle.take() {
            return Ok(l);
        }
        match self.module.start(&self.env, &self.config_json).await {
            Ok((l, _)) => Ok(l),
            Err(CallError::Failed { failure, .. }) => Err(failure),
            Err(e) => Err(Failure::Trap(e.to_string())),
        }
    }
}

/// The log phase of one step runs on an instance of its own, one entry at a time and in order:
/// a plugin that batches (http-log) sees every record of its route, and a slow or hanging log
/// phase holds one instance and the queue, never a request. The task ends with the step (its
/// queue's sender) once the queue is drained.
fn log_worker(
    route: Arc<str>,
    module: Arc<Module>,
    env: Arc<Env>,
    config_json: String,
) -> mpsc::Sender<LogEntry> {
    let (tx, mut rx) = mpsc::channel::<LogEntry>(LOG_QUEUE);
    tokio::spawn(async move {
        let mut live: Option<Live> = None;
        while let Some(entry) = rx.recv().await {
            let mut instance = match live.take() {
                Some(l) => l,
                None => match module.start(&env, &config_json).await {
                    Ok((l, _)) => l,
                    Err(e) => {
                        tracing::warn!(plugin = %env.name, route = %route, phase = "log", "plugin {e}");
                        continue;
                    }
                },
            };
            match instance.log(&entry).await {
                Ok(()) => live = Some(instance),
                Err(failure) => {
                    failure.count(&env.name, &route, "log");
                    tracing::warn!(plugin = %env.name, route = %route, phase = "log", "plugin {failure}");
                }
            }
        }
    });
    tx
}
