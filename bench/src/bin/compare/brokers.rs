//! Which brokers a run compares, and under which spin policy: `--brokers` entries parsed into
//! [`BrokerSpec`]s, and the command-line switches that start each one the same way.
//!
//! Entries:
//! - `switchyard`: the release build beside this harness, routing decision cache on;
//! - `switchyard-nocache`: the same with the cache off (`--plugin-decision-cache-entries 0`),
//!   W1 only, so the table shows what a plugin call per message costs;
//! - `switchyard-amqp`: the same broker driven over AMQP 0-9-1 by the lapin client and the
//!   workload code that drive RabbitMQ, so its ratio to RabbitMQ measures the brokers alone;
//! - `rabbitmq`: Debian's RabbitMQ;
//! - `LABEL=PATH`, `LABEL-nocache=PATH`: another Switchyard binary under its own label, e.g.
//!   `before=/tmp/old/switchyard` for a before/after comparison in one run.

use std::path::PathBuf;

use crate::workloads::Workload;

/// Whether servers may busy-wait for work. Both brokers always run under the same policy: a
/// spinning broker trades CPU for latency, and comparing one that spins against one that
/// does not measures the policy, not the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Spin {
    /// Switchyard `--busy-wait-us 0`; RabbitMQ's schedulers with `+sbwt none` (and the dirty
    /// schedulers too), as Debian's RabbitMQ 3.10 starts anyway.
    Off,
    /// Switchyard `--busy-wait-us 200`; Erlang's default scheduler busy-wait (`medium`).
    On,
}

impl Spin {
    pub fn switchyard_args(self) -> Vec<String> {
        let us = match self {
            Spin::Off => 0,
            Spin::On => 200,
        };
        vec!["--busy-wait-us".into(), us.to_string()]
    }

    pub fn erlang_args(self) -> &'static str {
        match self {
            Spin::Off => "+sbwt none +sbwtdcpu none +sbwtdio none",
            Spin::On => "+sbwt medium +sbwtdcpu medium +sbwtdio medium",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerKind {
    Switchyard {
        /// `None`: the `switchyard` binary next to this harness.
        binary: Option<PathBuf>,
        decision_cache: bool,
        /// Driven over AMQP with lapin (as RabbitMQ is), not over QUIC with the SDK.
        over_amqp: bool,
    },
    RabbitMq,
}

/// One broker of the comparison, as its rows are labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSpec {
    pub label: String,
    pub kind: BrokerKind,
}

/// The label of the reference broker every ratio is taken against.
pub const REFERENCE: &str = "rabbitmq";

impl BrokerSpec {
    pub fn parse(text: &str) -> anyhow::Result<BrokerSpec> {
        let text = text.trim();
        let (label, binary) = match text.split_once('=') {
            Some((label, path)) => (label.trim(), Some(PathBuf::from(path.trim()))),
            None => (text, None),
        };
        anyhow::ensure!(!label.is_empty(), "a broker needs a label: {text:?}");
        let kind = match (label.to_ascii_lowercase().as_str(), binary) {
            ("rabbitmq" | "rabbit" | "rmq", None) => BrokerKind::RabbitMq,
            ("switchyard" | "sy", None) => BrokerKind::Switchyard {
                binary: None,
                decision_cache: true,
                over_amqp: false,
            },
            ("switchyard-amqp", None) => BrokerKind::Switchyard {
                binary: None,
                decision_cache: true,
                over_amqp: true,
            },
            ("switchyard-nocache", None) => BrokerKind::Switchyard {
                binary: None,
                decision_cache: false,
                over_amqp: false,
            },
            (_, Some(binary)) => BrokerKind::Switchyard {
                binary: Some(binary),
                decision_cache: !label.ends_with("-nocache"),
                over_amqp: label.ends_with("-amqp"),
            },
            (other, None) => anyhow::bail!(
                "unknown broker {other:?} (switchyard, switchyard-nocache, switchyard-amqp, rabbitmq, or LABEL=PATH to a switchyard binary)"
            ),
        };
        let label = match kind {
            BrokerKind::RabbitMq => REFERENCE.to_owned(),
            BrokerKind::Switchyard { .. } if label == "sy" => "switchyard".to_owned(),
            _ => label.to_owned(),
        };
        Ok(BrokerSpec { label, kind })
    }

    /// Whether this broker runs `workload`: a broker without the decision cache runs W1 only
    /// (the topic workload, where the cache answers nearly every routing decision).
    pub fn runs(&self, workload: Workload) -> bool {
        match self.kind {
            BrokerKind::Switchyard {
                decision_cache: false,
                ..
            } => workload == Workload::W1,
            _ => true,
        }
    }

    pub fn is_switchyard(&self) -> bool {
        matches!(self.kind, BrokerKind::Switchyard { .. })
    }

    /// Whether the memory figures are taken for this broker: the reference and the first
    /// Switchyard with its cache on, from this build.
    pub fn measures_memory(&self) -> bool {
        matches!(
            self.kind,
            BrokerKind::RabbitMq
                | BrokerKind::Switchyard {
                    binary: None,
                    decision_cache: true,
                    ..
                }
        )
    }
}

/// The order the brokers run in repetition `repetition` (from 1): rotated by one each time,
/// so every broker runs early and late in the run alike and the machine's drift spreads over
/// all of them (A B C, B C A, C A B, …).
pub fn order(brokers: &[BrokerSpec], repetition: usize) -> Vec<&BrokerSpec> {
    let n = brokers.len().max(1);
    (0..brokers.len())
        .map(|i| &brokers[(i + repetition - 1) % n])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_into_labelled_brokers() {
        let before = BrokerSpec::parse("before=/tmp/sy").unwrap();
        assert_eq!(before.label, "before");
        assert!(before.runs(Workload::W2));
        let uncached = BrokerSpec::parse("before-nocache=/tmp/sy").unwrap();
        assert!(!uncached.runs(Workload::W2) && uncached.runs(Workload::W1));
        assert_eq!(BrokerSpec::parse("rmq").unwrap().label, REFERENCE);
        assert!(BrokerSpec::parse("nats").is_err());
    }

    #[test]
    fn repetitions_rotate_the_order() {
        let brokers: Vec<BrokerSpec> = ["switchyard", "rabbitmq", "before=/x"]
            .iter()
            .map(|b| BrokerSpec::parse(b).unwrap())
            .collect();
        let labels = |r| {
            order(&brokers, r)
                .iter()
                .map(|b| b.label.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(1), ["switchyard", "rabbitmq", "before"]);
        assert_eq!(labels(2), ["rabbitmq", "before", "switchyard"]);
        assert_eq!(labels(4), labels(1));
    }
}
