//! More AMQP clients nobody on the team wrote: Celery (kombu over py-amqp), aio-pika and amqplib.
//! (Being written.)
