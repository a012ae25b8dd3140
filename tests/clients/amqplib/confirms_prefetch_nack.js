// A confirm channel (createConfirmChannel): every publish is acked; a consumer with prefetch 2
// never holds more than 2 unacknowledged messages; nack with requeue brings a message back
// marked redelivered, nack without requeue drops it; get counts what is left.
'use strict';
const { connect, check, within, run } = require('./common');

async function main() {
  const connection = await connect();
  const server = connection.connection.serverProperties;
  console.log(`server: ${server.product} ${server.version}`);
  const confirm = await connection.createConfirmChannel();
  await confirm.assertQueue('js-work', { durable: true });
  await confirm.purgeQueue('js-work');
  const acked = [];
  for (let n = 0; n < 10; n++) {
    confirm.sendToQueue('js-work', Buffer.from(String(n)), { persistent: true }, (err) => {
      acked.push(err ? `nack ${n}` : n);
    });
  }
  await within(10000, confirm.waitForConfirms(), 'confirms');
  check(acked.length === 10 && acked.every((a) => typeof a === 'number'), `confirms ${acked}`);
  const { messageCount } = await confirm.checkQueue('js-work');
  check(messageCount === 10, `checkQueue count ${messageCount}`);

  const channel = await connection.createChannel();
  await channel.prefetch(2);
  const held = [];
  const seen = [];
  let maxHeld = 0;
  let wake;
  const consumed = await channel.consume('js-work', (message) => {
    held.push(message);
    seen.push(`${message.content}${message.fields.redelivered ? 'r' : ''}`);
    maxHeld = Math.max(maxHeld, held.length);
    if (wake) wake();
  });
  const waitFor = (predicate, what) =>
    within(10000, (async () => {
      while (!predicate()) {
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
    })(), what);

  // The first two arrive; the third waits for an ack.
  await waitFor(() => held.length === 2, 'two deliveries');
  await new Promise((resolve) => setTimeout(resolve, 300));
  check(held.length === 2, `prefetch 2 but ${held.length} unacknowledged`);
  // "0": nack and requeue (it comes back, redelivered); "1": nack without requeue (dropped).
  channel.nack(held.shift(), false, true);
  channel.nack(held.shift(), false, false);
  let acks = 0;
  while (acks < 9) {
    await waitFor(() => held.length > 0, `delivery after ${acks} acks (seen ${seen})`);
    channel.ack(held.shift());
    acks += 1;
  }
  await channel.cancel(consumed.consumerTag);
  check(maxHeld === 2, `at most ${maxHeld} unacknowledged`);
  check(seen.includes('0r'), `"0" came back redelivered: ${seen}`);
  check(!seen.includes('1r'), `"1" was dropped: ${seen}`);
  check(seen.length === 11, `11 deliveries (10 + 1 requeued): ${seen}`);
  const left = await confirm.checkQueue('js-work');
  check(left.messageCount === 0, `left ${left.messageCount}`);

  // An unroutable mandatory publish is returned, and still confirmed.
  const returned = new Promise((resolve) => confirm.once('return', resolve));
  confirm.publish('', 'no-such-queue', Buffer.from('lost'), { mandatory: true });
  const back = await within(10000, returned, 'basic.return');
  check(back.fields.replyCode === 312 && String(back.content) === 'lost', `returned ${back.fields.replyCode}`);
  await within(10000, confirm.waitForConfirms(), 'the confirm of a returned message');
  await connection.close();
}

run(main, 'amqplib confirms, prefetch and nack');
