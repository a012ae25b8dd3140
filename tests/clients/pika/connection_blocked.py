"""connection.blocked / unblocked: past the broker's memory watermark (the test starts it with
a small one) a client that asked for the notification is told it is blocked, and unblocked
once a consumer has drained the queue."""
import pika

from common import check, connect, done

events = []
connection = connect()
connection.add_on_connection_blocked_callback(lambda conn, method: events.append("blocked"))
connection.add_on_connection_unblocked_callback(lambda conn, method: events.append("unblocked"))
channel = connection.channel()
channel.queue_declare(queue="filling")
for _ in range(50):
    channel.basic_publish(exchange="", routing_key="filling", body=b"x" * 10_000)
    connection.process_data_events(time_limit=0)
    if "blocked" in events:
        break
connection.process_data_events(time_limit=1)
check("blocked" in events, f"never blocked: {events}")

drainer = connect()
drain = drainer.channel()
while True:
    method, _, _ = drain.basic_get("filling", auto_ack=True)
    if method is None:
        break
drainer.close()
for _ in range(20):
    connection.process_data_events(time_limit=0.25)
    if "unblocked" in events:
        break
check(events[-1] == "unblocked", f"never unblocked: {events}")
connection.close()
done("connection.blocked")
