"""exchange.bind: a message published to one exchange reaches a queue bound to another
exchange bound to it; exchange.unbind stops that."""
from common import check, connect, done

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange="front", exchange_type="topic")
channel.exchange_declare(exchange="back", exchange_type="fanout")
channel.exchange_bind(destination="back", source="front", routing_key="orders.#")
channel.queue_declare(queue="behind")
channel.queue_bind(queue="behind", exchange="back")
channel.basic_publish(exchange="front", routing_key="orders.eu", body="through")
channel.basic_publish(exchange="front", routing_key="invoices.eu", body="not through")
method, _, body = channel.basic_get("behind", auto_ack=True)
check(body == b"through", f"got {body}")
check(channel.basic_get("behind")[0] is None, "only the matching key went through")
channel.exchange_unbind(destination="back", source="front", routing_key="orders.#")
channel.basic_publish(exchange="front", routing_key="orders.eu", body="after unbind")
check(channel.basic_get("behind")[0] is None, "unbound")
connection.close()
done("exchange-to-exchange bindings")
