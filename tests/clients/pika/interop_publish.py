"""Publishes one message over AMQP with every property and a header of every type pika can
send (pika cannot encode floats); the Rust test consumes it over QUIC and checks what arrived."""
import datetime
import decimal

import pika

from common import connect, done

connection = connect()
channel = connection.channel()
channel.queue_declare(queue="from-amqp")
headers = {
    "int": 7,
    "big": 2**40,
    "negative": -70000,
    "true": True,
    "none": None,
    "text": "ünïcode ✓",
    "bytes": b"\x00\xff",
    "decimal": decimal.Decimal("123.45"),
    "when": datetime.datetime(2025, 12, 2, 4, 33, 20),
    "list": [1, "a", None, [2]],
    "table": {"callbacks": None, "nested": {"depth": 2}},
}
properties = pika.BasicProperties(
    content_type="application/json",
    content_encoding="utf-8",
    headers=headers,
    delivery_mode=2,
    priority=4,
    correlation_id="c-7",
    reply_to="replies",
    expiration="60000",
    message_id="m-7",
    timestamp=1764650000,
    type="order.created",
    user_id="guest",
    app_id="shop",
    cluster_id="eu-1",
)
channel.confirm_delivery()
channel.basic_publish(exchange="", routing_key="from-amqp", body=b"\x00body\xff", properties=properties)
connection.close()
done("published over AMQP")
