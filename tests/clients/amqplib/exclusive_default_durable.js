// RabbitMQ's JavaScript tutorial 3 (publish/subscribe) as written there: a server-named queue
// from `assertQueue('', { exclusive: true })`. amqplib's assertQueue defaults to
// durable: true, so this declares an exclusive *durable* queue, which RabbitMQ accepts (the
// queue still ends with its connection).
'use strict';
const { connect, check, within, run } = require('./common');

async function main() {
  const connection = await connect();
  const channel = await connection.createChannel();
  await channel.assertExchange('js-logs', 'fanout', { durable: false });
  const q = await channel.assertQueue('', { exclusive: true });
  check(q.queue.startsWith('amq.gen-'), `server-named queue ${q.queue}`);
  await channel.bindQueue(q.queue, 'js-logs', '');
  const received = new Promise((resolve) =>
    channel.consume(q.queue, (message) => resolve(String(message.content)), { noAck: true }));
  channel.publish('js-logs', '', Buffer.from('hello subscribers'));
  check((await within(10000, received, 'the log message')) === 'hello subscribers', 'fanout');
  await connection.close();
}

run(main, 'amqplib tutorial 3 with an exclusive queue (durable by default)');
