"""What RabbitMQ cannot do, from pika: an exchange of a plugin type (json-route, routing on a
field of the JSON body) and a consumer filter (the selector plugin, through x-filter)."""
import json

import pika

from common import check, connect, done

connection = connect()
channel = connection.channel()

# Route on the JSON body's `order.region` field.
channel.exchange_declare(exchange="orders", exchange_type="json-route",
                         arguments={"field": "order.region"})
channel.queue_declare(queue="eu-orders")
channel.queue_bind(queue="eu-orders", exchange="orders", routing_key="eu")
for region in ("eu", "us", "eu"):
    body = json.dumps({"order": {"id": 1, "region": region}})
    channel.basic_publish(exchange="orders", routing_key="", body=body)
bodies = []
while True:
    method, _, body = channel.basic_get("eu-orders", auto_ack=True)
    if method is None:
        break
    bodies.append(json.loads(body)["order"]["region"])
check(bodies == ["eu", "eu"], f"json-route delivered {bodies}")

# A consumer that sees only what its selector expression accepts.
channel.queue_declare(queue="all-orders")
for region, priority in (("eu", 9), ("us", 9), ("eu", 1)):
    channel.basic_publish(exchange="", routing_key="all-orders", body=f"{region}/{priority}",
                          properties=pika.BasicProperties(headers={"region": region},
                                                          priority=priority))
seen = []
channel.basic_consume("all-orders", lambda ch, m, p, b: seen.append(b), auto_ack=True,
                      arguments={"x-filter": "region = 'eu' AND priority > 5"})
for _ in range(20):
    connection.process_data_events(time_limit=0.25)
    if seen:
        break
connection.process_data_events(time_limit=0.5)
check(seen == [b"eu/9"], f"the filtered consumer saw {seen}")

# A bad expression is refused when the consumer subscribes, with the position of the error.
bad = connection.channel()
bad.queue_declare(queue="all-orders", passive=True)
try:
    bad.basic_consume("all-orders", lambda *a: None, arguments={"x-filter": "region = "})
    check(False, "a bad filter expression was accepted")
except pika.exceptions.ChannelClosedByBroker as error:
    check(error.reply_code == 406, f"{error}")
connection.close()
done("beyond RabbitMQ")
