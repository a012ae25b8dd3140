"""RabbitMQ tutorial 1, "Hello World": one producer, one consumer, the default exchange."""
from common import check, connect, done

producer = connect()
channel = producer.channel()
channel.queue_declare(queue="hello")
channel.basic_publish(exchange="", routing_key="hello", body="Hello World!")
producer.close()

consumer = connect()
channel = consumer.channel()
channel.queue_declare(queue="hello")
received = []


def callback(ch, method, properties, body):
    received.append(body)
    ch.stop_consuming()


channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)
consumer.call_later(10, channel.stop_consuming)
channel.start_consuming()
check(received == [b"Hello World!"], f"received {received}")
consumer.close()
done("hello world")
