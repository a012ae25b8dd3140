// A headers exchange routes on typed values (numbers, booleans, x-match all and any), and
// typed headers come back exactly as sent: a double and a float (pika cannot send either),
// integers of every width amqplib picks, a 64-bit integer, booleans, null, nested tables and
// arrays, and explicitly typed values ({'!': type, value}).
'use strict';
const { connect, check, within, run } = require('./common');

async function main() {
  const connection = await connect();
  const channel = await connection.createConfirmChannel();
  await channel.assertExchange('js-headers', 'headers', { durable: false });
  const all = (await channel.assertQueue('', { exclusive: true, durable: false })).queue;
  await channel.bindQueue(all, 'js-headers', '', { 'x-match': 'all', version: 2, urgent: true });
  const any = (await channel.assertQueue('', { exclusive: true, durable: false })).queue;
  await channel.bindQueue(any, 'js-headers', '', { 'x-match': 'any', ratio: 0.25, kind: 'b' });

  const typed = {
    version: 2,
    urgent: true,
    ratio: 0.25,
    pi: 3.141592653589793,
    negativeTiny: -1.5e-300,
    single: { '!': 'float', value: 1.5 },
    big: 2 ** 40,
    negative: -70000,
    byte: 7,
    nothing: null,
    text: 'ünïcode ✓',
    list: [1, 2.5, 'a', false, [3]],
    table: { inner: 0.125, flag: false },
  };
  const publish = (headers, body) =>
    channel.publish('js-headers', '', Buffer.from(body), { headers });
  publish(typed, 'typed');
  publish({ version: 2, urgent: false }, 'not urgent');
  publish({ ratio: 0.25 }, 'ratio only');
  publish({ ratio: 0.5, kind: 'a' }, 'neither');
  await within(10000, channel.waitForConfirms(), 'confirms');

  const take = async (queue) => {
    const bodies = [];
    let message;
    while ((message = await channel.get(queue, { noAck: true }))) {
      bodies.push([String(message.content), message.properties.headers]);
    }
    return bodies;
  };
  const fromAll = await take(all);
  check(fromAll.length === 1 && fromAll[0][0] === 'typed', `x-match all: ${fromAll.map((b) => b[0])}`);
  const fromAny = (await take(any)).map((b) => b[0]).sort();
  check(JSON.stringify(fromAny) === JSON.stringify(['ratio only', 'typed']), `x-match any: ${fromAny}`);

  const headers = fromAll[0][1];
  console.log('headers back:', JSON.stringify(headers));
  const same = (name, expected) =>
    check(Object.is(headers[name], expected) || JSON.stringify(headers[name]) === JSON.stringify(expected),
      `${name}: sent ${JSON.stringify(expected)}, got ${JSON.stringify(headers[name])}`);
  same('version', 2);
  same('urgent', true);
  same('ratio', 0.25);
  same('pi', 3.141592653589793);
  same('negativeTiny', -1.5e-300);
  same('single', 1.5);
  same('big', 2 ** 40);
  same('negative', -70000);
  same('byte', 7);
  same('nothing', null);
  same('text', 'ünïcode ✓');
  same('list', [1, 2.5, 'a', false, [3]]);
  same('table', { inner: 0.125, flag: false });
  check(typeof headers.pi === 'number' && headers.pi !== 3, 'a double stays a double');
  await channel.deleteExchange('js-headers');
  await connection.close();
}

run(main, 'amqplib typed headers');
