//! Readiness: the gateway can serve when both upstreams say SERVING.
//!
//! Answers are cached for `READY_CACHE`, and concurrent `/readyz` requests during a refresh
//! wait for that one refresh instead of each asking the upstreams: however often probes and
//! load balancers poll, each upstream gets at most one health check per cache period.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::client::{HealthProbe, ProbeStatus};

/// The answer to "can the gateway serve?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The upstreams that are not serving, by name; empty when ready.
    pub not_ready: Vec<&'static str>,
    /// What each upstream answered.
    pub upstreams: BTreeMap<&'static str, UpstreamReport>,
}

/// One upstream's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct UpstreamReport {
    /// SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN, UNREACHABLE or ERROR.
    pub status: ProbeStatus,
}

impl Report {
    /// Whether every upstream serves.
    pub fn is_ready(&self) -> bool {
        self.not_ready.is_empty()
    }
}

/// Checks the upstreams, caching the answer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    probes: Vec<HealthProbe>,
    timeout: Duration,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Report)>>,
}

impl Readiness {
    /// Checks `probes` with `timeout` each, reusing an answer for `ttl`.
    pub fn new(probes: Vec<HealthProbe>, timeout: Duration, ttl: Duration) -> Self {
        Readiness { inner: Arc::new(Inner { probes, timeout, ttl, cached: Mutex::new(None) }) }
    }

    /// The current answer: cached if younger than the TTL, else freshly asked.
    pub async fn check(&self) -> Report {
        let inner = &*self.inner;
        // Held across the refresh on purpose: that is what makes it single-flight.
        let mut cached = inner.cached.lock().await;
        if let Some((at, report)) = &*cached
            && at.elapsed() < inner.ttl
        {
            return report.clone();
        }
        let mut checks = tokio::task::JoinSet::new();
        for probe in inner.probes.clone() {
            let timeout = inner.timeout;
            checks.spawn(async move { (probe.upstream(), probe.check(timeout).await) });
        }
        // Every upstream starts as ERROR, so one whose probe task failed is never counted ready.
        let mut answers: BTreeMap<&'static str, ProbeStatus> =
            inner.probes.iter().map(|probe| (probe.upstream(), ProbeStatus::Error)).collect();
        while let Some(answer) = checks.join_next().await {
            match answer {
                Ok((upstream, status)) => {
                    answers.insert(upstream, status);
                }
                Err(error) => tracing::error!(%error, "health probe task failed"),
            }
        }
        let not_ready: Vec<&'static str> =
            answers.iter().filter(|(_, status)| **status != ProbeStatus::Serving).map(|(name, _)| *name).collect();
        let report = Report {
            status: if not_ready.is_empty() { "ready" } else { "not_ready" },
            not_ready,
            upstreams: answers.into_iter().map(|(name, status)| (name, UpstreamReport { status })).collect(),
        };
        *cached = Some((Instant::now(), report.clone()));
        report
    }
}
