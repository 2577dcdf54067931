//! A route's plugins in order, and the rules for running one phase over them: skip plugins that
//! do not implement the phase, stop at the first answer, and apply each plugin's fail mode.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::bindings::types::LogEntry;
use super::bindings::{Action, Answer, Phases};
use super::error::Failure;
use super::exchange::{BodySkips, Exchange, ResponseState};
use super::instance::Phase;
use super::settings::FailMode;
use super::step::Step;

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(|s| s.name()).collect();
        f.debug_struct("Chain").field("steps", &names).finish()
    }
}

pub struct Chain {
    pub steps: Vec<Arc<Step>>,
    /// Every phase some step implements.
    pub phases: Phases,
    /// The largest body the chain's body phases may buffer (the smallest of their limits).
    pub body_limit: usize,
    /// A response over `body_limit` goes on without the body phase: every response body plugin
    /// of the chain said `over_limit = "pass"`.
    pub pass_large_responses: bool,
}

/// A response the chain decided on: a plugin's answer or a fail-closed error.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub enum Verdict {
    Continue,
    /// Answer the client with this; the step at `at` decided it.
    Answer {
        reply: Reply,
        at: usize,
    },
}

impl Chain {
    pub fn new(steps: Vec<Arc<Step>>) -> Chain {
        let phases = steps.iter().fold(Phases::empty(), |p, s| p | s.phases);
        let body_limit = steps
            .iter()
            .filter(|s| {
                s.phases
                    .intersects(Phases::REQUEST_BODY | Phases::RESPONSE_BODY)
            })
            .map(|s| s.env.body_limit)
            .min()
            .unwrap_or(0);
        let pass_large_responses = steps
            .iter()
            .filter(|s| s.phases.contains(Phases::RESPONSE_BODY))
            .all(|s| s.env.over_limit == super::settings::OverLimit::Pass);
        Chain {
            steps,
            phases,
            body_limit,
            pass_large_responses,
        }
    }

    pub fn has(&self, phase: Phase) -> bool {
        self.phases.contains(phase.flag())
    }

    /// Whether one of the first `upto` steps still needs the body of `phase` (a body phase)
    /// for this exchange: it implements the phase and did not call `skip-body`.
    pub fn wants_body(&self, phase: Phase, ex: &Exchange, upto: usize) -> bool {
        self.has(phase)
            && self.steps[..upto.min(self.steps.len())]
                .iter()
                .enumerate()
                .any(|(i, s)| s.phases.contains(phase.flag()) && !skips(phase, ex, i))
    }

    /// Runs `phase` on the first `upto` steps: in chain order for request phases, in reverse
    /// for response phases. In a request phase an answer (or a fail-closed plugin) stops the
    /// chain; in a response phase it replaces the response in `ex` and the remaining steps run
    /// on the replacement.
    pub async fn run(
        &self,
        phase: Phase,
        mut ex: Box<Exchange>,
        upto: usize,
    ) -> (Box<Exchange>, Verdict) {
        let response_phase = matches!(phase, Phase::ResponseHeaders | Phase::ResponseBody);
        // The response travels back out through the chain: the first plugin sees it last, so
        // an outer plugin (request-id, CORS) decorates what an inner one answered or replaced.
        let upto = upto.min(self.steps.len());
        for n in 0..upto {
            let i = if response_phase { upto - 1 - n } else { n };
            let step = &self.steps[i];
            if !step.phases.contains(phase.flag()) || skips(phase, &ex, i) {
                continue;
            }
            ex.step = i;
            let (back, result) = step.call(phase, ex).await;
            ex = back;
            let reply = match result {
                Ok(Action::Continue) => continue,
                Ok(Action::Respond(answer)) => reply_from(step, answer),
                Err(failure) => {
                    failure.count(step.name(), &step.route, step.env.fail.as_str());
                    match step.env.fail {
                        FailMode::Open => {
                            tracing::warn!(plugin = step.name(), route = %step.route, phase = phase.name(), "plugin {failure}; fail = \"open\": skipped");
                            continue;
                        }
                        FailMode::Closed => {
                            tracing::error!(plugin = step.name(), route = %step.route, phase = phase.name(), "plugin {failure}; fail = \"closed\": request refused");
                            failed_closed(step, &failure)
                        }
                    }
                }
            };
            if !response_phase {
                return (ex, Verdict::Answer { reply, at: i });
            }
            ex.response = Some(ResponseState {
                status: reply.status,
                headers: reply.headers,
                body: Some(reply.body),
                replaced: true,
            });
        }
        (ex, Verdict::Continue)
    }
}

impl Chain {
    /// Hands `entry` to the log phase of every step that has one; returns at once (see
    /// `step::log_worker`).
    pub fn log(&self, entry: LogEntry) {
        let mut with_log = self
            .steps
            .iter()
            .filter(|s| s.phases.contains(Phases::LOG))
            .peekable();
        while let Some(step) = with_log.next() {
            if with_log.peek().is_some() {
                step.log(entry.clone());
            } else {
                step.log(entry);
                return;
            }
        }
    }
}

/// Whether step `i` said it does not need the body of body phase `phase`.
fn skips(phase: Phase, ex: &Exchange, i: usize) -> bool {
    match phase {
        Phase::RequestBody => BodySkips::skips(ex.skips.request, i),
        Phase::ResponseBody => BodySkips::skips(ex.skips.response, i),
        _ => false,
    }
}

/// The answer of a fail-closed plugin that failed.
fn failed_closed(step: &Step, failure: &Failure) -> Reply {
    let err = crate::error::ProxyError::PluginFailed {
        plugin: step.name().to_string(),
        failure: failure.clone(),
    };
    let (parts, body) = err.response::<Bytes>().into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn reply_from(step: &Step, a: Answer) -> Reply {
    let status = StatusCode::from_u16(a.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .unwrap_or_else(|| {
            tracing::warn!(
                plugin = step.name(),
                status = a.status,
                "plugin answered with an invalid status; sending 500"
            );
            StatusCode::INTERNAL_SERVER_ERROR
        });
    let mut headers = HeaderMap::with_capacity(a.headers.len());
    for (k, v) in a.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            (Ok(k), Ok(v)) => {
                headers.append(k, v);
            }
            _ => {
                tracing::warn!(plugin = step.name(), header = %k, "plugin answered with an invalid header; dropped");
            }
        }
    }
    Reply {
        status,
        headers,
        body: Bytes::from(a.body),
    }
}
