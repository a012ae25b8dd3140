"""A channel error closes only its channel: passive declares of what does not exist (404), a
publish to a missing exchange (404), a reserved name (403), an unknown delivery tag (406).
Another channel of the same connection keeps consuming throughout."""
import pika

from common import check, connect, done

connection = connect()
steady = connection.channel()
steady.queue_declare(queue="steady")


def expect_channel_error(code, action):
    channel = connection.channel()
    try:
        action(channel)
        # Errors of asynchronous methods (publish, ack) arrive with the next round trip.
        channel.queue_declare(queue="steady", passive=True)
        check(False, f"no channel error {code}")
    except pika.exceptions.ChannelClosedByBroker as error:
        check(error.reply_code == code, f"expected {code}, got {error.reply_code} {error.reply_text}")
    check(connection.is_open, "the connection survived")
    steady.basic_publish(exchange="", routing_key="steady", body="still here")
    method, _, body = steady.basic_get("steady", auto_ack=True)
    check(body == b"still here", "the other channel works")


expect_channel_error(404, lambda ch: ch.queue_declare(queue="missing", passive=True))
expect_channel_error(404, lambda ch: ch.exchange_declare(exchange="missing", passive=True))
expect_channel_error(404, lambda ch: ch.basic_publish(exchange="missing", routing_key="k", body="x"))
expect_channel_error(403, lambda ch: ch.exchange_declare(exchange="amq.mine", exchange_type="direct"))
expect_channel_error(403, lambda ch: ch.queue_declare(queue="amq.mine"))
expect_channel_error(406, lambda ch: ch.basic_ack(delivery_tag=99))
expect_channel_error(
    406, lambda ch: (ch.queue_declare(queue="typed", durable=True),
                     ch.queue_declare(queue="typed", durable=False)))
# The standard exchanges exist and can be checked passively.
channel = connection.channel()
for name in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"):
    channel.exchange_declare(exchange=name, passive=True)
connection.close()
done("channel errors")
