//! Declaring on a channel: exchanges (any loaded router plugin type, RabbitMQ's reserved
//! names) and queues (server-named, passive, `x-queue-type`), and AMQP's rule that an empty
//! queue name means the channel's last declared queue.

use super::*;

impl Channel {
    pub(super) fn declare_exchange(
        &mut self,
        declare: ExchangeDeclare,
        ctx: &mut Context<'_>,
    ) -> Result<(), Fault> {
        check_not_default_exchange(&declare.exchange)?;
        if !declare.passive {
            check_not_reserved("exchange", &declare.exchange)?;
            let kind = exchange_type(&declare.exchange_type);
            if !ctx.session.has_exchange_type(kind) {
                return Err(Fault::new(
                    ReplyCode::CommandInvalid,
                    format!(
                        "invalid exchange type {:?}: no router plugin of that name is loaded",
                        declare.exchange_type
                    ),
                ));
            }
        }
        let spec = ExchangeSpec {
            name: declare.exchange,
            kind: exchange_type(&declare.exchange_type).to_owned(),
            durable: declare.durable,
            auto_delete: declare.auto_delete,
            internal: declare.internal,
            arguments: declare.arguments,
        };
        block(|| ctx.session.declare_exchange(spec, declare.passive))?;
        if !declare.no_wait {
            ctx.send(self.id, ExchangeDeclareOk::default());
        }
        Ok(())
    }

    pub(super) fn declare_queue(
        &mut self,
        declare: QueueDeclare,
        ctx: &mut Context<'_>,
    ) -> Result<(), Fault> {
        if !declare.passive {
            check_not_reserved("queue", &declare.queue)?;
        }
        let name = if declare.passive && declare.queue.is_empty() {
            self.queue_name(String::new())?
        } else {
            declare.queue
        };
        let mut arguments = declare.arguments;
        match arguments.get_str("x-queue-type") {
            None | Some("classic") => {
                arguments.remove("x-queue-type");
            }
            Some(other) => {
                return Err(Fault::new(
                    ReplyCode::PreconditionFailed,
                    format!(
                        "x-queue-type {other:?} is not supported: Switchyard's queues are classic queues (durable ones confirm after fsync)"
                    ),
                ));
            }
        }
        let spec = QueueSpec {
            name,
            durable: declare.durable,
            exclusive: declare.exclusive,
            auto_delete: declare.auto_delete,
            arguments,
        };
        let queue = block(|| ctx.session.declare_queue(spec, declare.passive))?;
        let counts = queue.counts();
        let name = queue.name().to_owned();
        self.last_queue = Some(name.clone());
        if !declare.no_wait {
            ctx.send(
                self.id,
                QueueDeclareOk {
                    queue: name,
                    message_count: saturate(counts.ready),
                    consumer_count: counts.consumers,
                },
            );
        }
        Ok(())
    }

    /// A queue name from a method: an empty one is the channel's last declared queue.
    pub(super) fn queue_name(&self, name: String) -> Result<String, Fault> {
        if !name.is_empty() {
            return Ok(name);
        }
        self.last_queue
            .clone()
            .ok_or_else(|| Fault::new(ReplyCode::NotFound, "no previously declared queue"))
    }
}

/// RabbitMQ's exchange types under the names of the plugins that implement them.
pub(super) fn exchange_type(name: &str) -> &str {
    match name {
        "x-consistent-hash" => "consistent-hash",
        other => other,
    }
}
