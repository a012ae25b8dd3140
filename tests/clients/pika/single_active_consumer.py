"""x-single-active-consumer: of two consumers only the first receives; once it is cancelled,
the second takes over."""
from common import check, connect, done

connection = connect()
channel = connection.channel()
channel.queue_delete(queue="sac")
channel.queue_declare(queue="sac", arguments={"x-single-active-consumer": True})
got = {"first": [], "second": []}
first = channel.basic_consume("sac", lambda ch, m, p, b: got["first"].append(b), auto_ack=True)
second = channel.basic_consume("sac", lambda ch, m, p, b: got["second"].append(b), auto_ack=True)
for n in range(6):
    channel.basic_publish(exchange="", routing_key="sac", body=str(n))
for _ in range(20):
    connection.process_data_events(time_limit=0.25)
    if len(got["first"]) + len(got["second"]) >= 6:
        break
connection.process_data_events(time_limit=0.3)
check(len(got["first"]) == 6 and got["second"] == [], f"before the cancel: {got}")
channel.basic_cancel(first)
for n in range(6, 9):
    channel.basic_publish(exchange="", routing_key="sac", body=str(n))
for _ in range(20):
    connection.process_data_events(time_limit=0.25)
    if len(got["second"]) >= 3:
        break
check(got["second"] == [b"6", b"7", b"8"], f"after the cancel: {got}")
connection.close()
done("single active consumer")
