"""Publisher confirms, mandatory returns, and a consumer with a prefetch of 3 and manual acks:
never more than 3 unacknowledged deliveries at once, every message once and in order."""
import asyncio

import aio_pika
import aiormq

from common import check, connect, run


async def main():
    connection = await connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        server = connection.transport.connection.server_properties
        print("server:", server.get("product"), server.get("version"))
        queue = await channel.declare_queue("aio-work", durable=True)
        await queue.purge()
        for n in range(20):
            confirmation = await channel.default_exchange.publish(
                aio_pika.Message(str(n).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 headers={"n": n}),
                routing_key="aio-work",
            )
            check(isinstance(confirmation, aiormq.spec.Basic.Ack), f"confirm {confirmation!r}")
        # A robust channel answers a passive declare of a queue it declared from its cache, so
        # the count is asked on another channel.
        counting = await connection.channel()
        declared = await counting.declare_queue("aio-work", passive=True)
        check(declared.declaration_result.message_count == 20,
              f"message_count {declared.declaration_result.message_count}")

        # An unroutable mandatory message comes back (basic.return, 312 NO_ROUTE); aio-pika
        # hands the return to the publisher in place of the confirmation.
        returned = await channel.default_exchange.publish(
            aio_pika.Message(b"lost"), routing_key="no-such-queue", mandatory=True)
        check(isinstance(returned.delivery, aiormq.spec.Basic.Return), f"got {returned!r}")
        check(returned.delivery.reply_code == 312 and returned.body == b"lost",
              f"returned {returned.delivery.reply_code} {returned.body!r}")
        # A routable mandatory message is still confirmed afterwards.
        side = await channel.declare_queue("aio-side", exclusive=True)
        confirmation = await channel.default_exchange.publish(
            aio_pika.Message(b"routed"), routing_key="aio-side", mandatory=True)
        check(isinstance(confirmation, aiormq.spec.Basic.Ack), f"confirm {confirmation!r}")
        routed = await side.get(no_ack=True)
        check(routed.body == b"routed", f"routed {routed.body!r}")

        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=3)
        queue = await consumer_channel.declare_queue("aio-work", durable=True)
        unacked = []
        received = []
        max_unacked = 0
        all_done = asyncio.Event()

        async def on_message(message):
            nonlocal max_unacked
            unacked.append(message)
            received.append((int(message.body), message.headers.get("n")))
            max_unacked = max(max_unacked, len(unacked))
            if len(received) == 20:
                all_done.set()

        tag = await queue.consume(on_message)
        # Ack slowly, one at a time, letting the broker fill the window in between.
        while not all_done.is_set() or unacked:
            await asyncio.sleep(0.05)
            if unacked:
                await unacked.pop(0).ack()
        await queue.cancel(tag)
        check(received == [(n, n) for n in range(20)], f"received (body, header n) {received}")
        check(max_unacked == 3, f"at most {max_unacked} unacknowledged (prefetch 3)")
        empty = await queue.get(fail=False)
        check(empty is None, "the queue is empty")
        await queue.delete()


run(main, "aio-pika confirms and prefetch")
