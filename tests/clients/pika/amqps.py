"""AMQP over TLS: pika verifies the broker's (development) certificate and works as over TCP."""
import os
import ssl

import pika

from common import check, done

context = ssl.create_default_context(cafile=os.environ["CA_FILE"])
parameters = pika.ConnectionParameters(
    host="localhost",
    port=int(os.environ["AMQPS_PORT"]),
    credentials=pika.PlainCredentials("guest", "guest"),
    ssl_options=pika.SSLOptions(context, server_hostname="localhost"),
)
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.queue_declare(queue="secret")
channel.confirm_delivery()
channel.basic_publish(exchange="", routing_key="secret", body="over TLS")
method, _, body = channel.basic_get("secret", auto_ack=True)
check(body == b"over TLS", f"got {body}")
connection.close()
done("amqps")
