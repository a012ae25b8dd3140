"""A topic exchange: `*` and `#` patterns, a queue bound twice, unbinding."""
import asyncio

import aio_pika

from common import check, connect, run


async def drain(queue):
    bodies = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        bodies.append(message.body.decode())
    return sorted(bodies)


async def main():
    connection = await connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        logs = await channel.declare_exchange("aio-logs", aio_pika.ExchangeType.TOPIC)
        kern = await channel.declare_queue(exclusive=True)
        await kern.bind(logs, "kern.*")
        critical = await channel.declare_queue(exclusive=True)
        await critical.bind(logs, "*.critical")
        await critical.bind(logs, "kern.#")
        everything = await channel.declare_queue(exclusive=True)
        await everything.bind(logs, "#")
        for key in ("kern.info", "kern.critical", "app.critical", "app.info", "kern.disk.full"):
            await logs.publish(aio_pika.Message(key.encode()), routing_key=key)
        await asyncio.sleep(0)
        check(await drain(kern) == ["kern.critical", "kern.info"], "kern.*")
        # Bound twice (both patterns match kern.critical): one copy.
        check(await drain(critical) == ["app.critical", "kern.critical", "kern.disk.full",
                                        "kern.info"], "*.critical and kern.#")
        check(len(await drain(everything)) == 5, "#")
        await critical.unbind(logs, "kern.#")
        await logs.publish(aio_pika.Message(b"kern.info"), routing_key="kern.info")
        check(await drain(critical) == [], "unbound")
        check(await drain(kern) == ["kern.info"], "still bound")
        await logs.delete()


run(main, "aio-pika topics")
