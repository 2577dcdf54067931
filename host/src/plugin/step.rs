//! One entry of a route's chain: a module with its route-specific config, and the pool of live
//! instances that already ran `init` with that config.

use std::sync::{Arc, Mutex};

use super::bindings::types::LogEntry;
use super::bindings::{Action, Phases};
use super::error::{CallError, Failure};
use super::exchange::Exchange;
use super::instance::{Live, Phase};
use super::module::Module;
use super::settings::{Env, Isolation};

pub struct Step {
    pub route: Arc<str>,
    pub module: Arc<Module>,
    pub env: Arc<Env>,
    pub config_json: String,
    pub phases: Phases,
    idle: Mutex<Vec<Live>>,
}

impl Step {
    /// Starts a first instance, which runs `init`: a config the plugin refuses fails here, at
    /// load, never on a request.
    pub async fn new(
        route: Arc<str>,
        module: Arc<Module>,
        env: Arc<Env>,
        config_json: String,
    ) -> Result<Step, CallError> {
        let (live, phases) = Live::start(&module.pre, &env, &config_json).await?;
        let idle = match env.isolation {
            Isolation::Pooled => vec![live],
            Isolation::PerRequest => Vec::new(),
        };
        Ok(Step {
            route,
            module,
            env,
            config_json,
            phases,
            idle: Mutex::new(idle),
        })
    }

    pub fn name(&self) -> &str {
        &self.env.name
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
            Err(failure) => return (ex, Err(failure)),
        };
        let (ex, result) = live.call(phase, ex).await;
        if result.is_ok() {
            self.give_back(live);
        }
        (ex, result)
    }

    /// Runs the log phase on a pooled (or new) instance.
    pub async fn log(&self, entry: &LogEntry) -> Result<(), Failure> {
        let mut live = self.instance().await?;
        live.log(entry).await?;
        self.give_back(live);
        Ok(())
    }

    async fn instance(&self) -> Result<Live, Failure> {
        if let Some(l) = self.take() {
            return Ok(l);
        }
        match Live::start(&self.module.pre, &self.env, &self.config_json).await {
            Ok((l, _)) => Ok(l),
            Err(CallError::Failed { failure, .. }) => Err(failure),
            Err(e) => Err(Failure::Trap(e.to_string())),
        }
    }

    fn take(&self) -> Option<Live> {
        if self.env.isolation != Isolation::Pooled {
            return None;
        }
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, live: Live) {
        if self.env.isolation != Isolation::Pooled {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.env.pool_size
        {
            idle.push(live);
        }
    }
}
