"""Gets the message the Rust test published over QUIC and prints its properties and headers
with their Python types, for the test to check."""
from common import check, connect, done

connection = connect()
channel = connection.channel()
method, properties, body = channel.basic_get("from-quic", auto_ack=True)
check(method is not None, "no message from QUIC")


def typed(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {typed(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(typed(v) for v in value) + "]"
    return f"{type(value).__name__}:{value!r}"


print("body", repr(body))
for name in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id",
             "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id",
             "cluster_id"):
    print("property", name, repr(getattr(properties, name)))
print("headers", typed(properties.headers))
connection.close()
done("consumed over AMQP")
