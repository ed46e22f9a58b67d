//! Prometheus metrics of one server instance, rendered at `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The counters, gauges and histograms a server keeps.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub authz: IntCounterVec,
    pub logins: IntCounterVec,
    pub password_verifications: IntCounter,
    pub messages_posted: IntCounter,
    pub write_batch_size: Histogram,
    pub write_batch_seconds: Histogram,
    pub ws_connections: IntGauge,
    pub ws_deliveries: IntCounter,
    pub ws_slow_disconnects: IntCounter,
    pub ws_resyncs: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new_custom(Some("warroom".into()), None).expect("valid prefix");
        let m = Self {
            http_requests: IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests by route and status"),
                &["method", "route", "status"],
            )
            .expect("valid metric"),
            http_latency: HistogramVec::new(
                HistogramOpts::new("http_request_seconds", "HTTP request latency").buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
                &["method", "route"],
            )
            .expect("valid metric"),
            authz: IntCounterVec::new(
                Opts::new("authz_decisions_total", "Cedar decisions"),
                &["decision"],
            )
            .expect("valid metric"),
            logins: IntCounterVec::new(
                Opts::new("logins_total", "Login attempts by outcome"),
                &["outcome"],
            )
            .expect("valid metric"),
            password_verifications: IntCounter::new(
                "password_verifications_total",
                "argon2id verifications, including the decoy for unknown users",
            )
            .expect("valid metric"),
            messages_posted: IntCounter::new("messages_posted_total", "Messages durably stored")
                .expect("valid metric"),
            write_batch_size: Histogram::with_opts(
                HistogramOpts::new("write_batch_size", "Operations per group commit").buckets(
                    vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                ),
            )
            .expect("valid metric"),
            write_batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "write_batch_seconds",
                    "Time to commit one group of operations",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5,
                ]),
            )
            .expect("valid metric"),
            ws_connections: IntGauge::new("ws_connections", "Open WebSocket connections")
                .expect("valid metric"),
            ws_deliveries: IntCounter::new("ws_deliveries_total", "Events delivered to sockets")
                .expect("valid metric"),
            ws_slow_disconnects: IntCounter::new(
                "ws_slow_consumer_disconnects_total",
                "Sockets closed because their send queue filled",
            )
            .expect("valid metric"),
            ws_resyncs: IntCounter::new(
                "ws_resyncs_total",
                "Resume requests answered with a resync",
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.http_requests.clone()),
            Box::new(m.http_latency.clone()),
            Box::new(m.authz.clone()),
            Box::new(m.logins.clone()),
            Box::new(m.password_verifications.clone()),
            Box::new(m.messages_posted.clone()),
            Box::new(m.write_batch_size.clone()),
            Box::new(m.write_batch_seconds.clone()),
            Box::new(m.ws_connections.clone()),
            Box::new(m.ws_deliveries.clone()),
            Box::new(m.ws_slow_disconnects.clone()),
            Box::new(m.ws_resyncs.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }
}

impl Metrics {
    /// Count one authorization decision.
    pub fn authz_decision(&self, allowed: bool) {
        self.authz
            .with_label_values(&[if allowed { "allow" } else { "deny" }])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}
