// basic.get (get-empty, get-ok with the count left, ack), and a channel error (a passive
// declare of a missing queue: 404) that closes only its channel: the connection and its other
// channels go on.
'use strict';
const { connect, check, within, run } = require('./common');

async function main() {
  const connection = await connect();
  let connectionClosed = false;
  connection.on('close', () => { connectionClosed = true; });
  connection.on('error', () => {});
  const steady = await connection.createChannel();
  await steady.assertQueue('js-get');
  await steady.purgeQueue('js-get');
  check((await steady.get('js-get')) === false, 'get-empty');
  for (const body of ['a', 'b', 'c']) steady.sendToQueue('js-get', Buffer.from(body));
  const first = await steady.get('js-get');
  check(first && String(first.content) === 'a', `get-ok ${first && first.content}`);
  check(first.fields.messageCount === 2, `message count ${first.fields.messageCount}`);
  steady.ack(first);

  const doomed = await connection.createChannel();
  const closed = new Promise((resolve) => doomed.on('close', resolve));
  const errored = new Promise((resolve) => doomed.on('error', resolve));
  let failure;
  try {
    await doomed.checkQueue('js-missing');
  } catch (error) {
    failure = error;
  }
  check(failure && failure.code === 404, `passive declare of a missing queue: ${failure}`);
  await within(5000, closed, 'the channel closing');
  const error = await within(5000, errored, 'the channel error event');
  check(error.code === 404, `channel error ${error.code}`);
  let reuse;
  try {
    await doomed.assertQueue('js-get');
  } catch (e) {
    reuse = e;
  }
  check(reuse, 'the closed channel refuses further use');

  // The connection and the other channel are still there.
  check(!connectionClosed, 'the connection survived');
  const second = await steady.get('js-get', { noAck: true });
  check(second && String(second.content) === 'b', `the other channel still works: ${second && second.content}`);
  const fresh = await connection.createChannel();
  const { messageCount } = await fresh.checkQueue('js-get');
  check(messageCount === 1, `a new channel sees ${messageCount} left`);
  await connection.close();
  check(connectionClosed, 'closed at the end');
}

run(main, 'amqplib basic.get and channel errors');
