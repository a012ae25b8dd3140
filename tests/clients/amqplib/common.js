// What every amqplib script shares: the broker's address from the test (AMQP_PORT), a check
// helper, and a bound on the whole script.
'use strict';
const amqp = require('amqplib');

const URL = `amqp://guest:guest@127.0.0.1:${process.env.AMQP_PORT}/`;

function connect() {
  return amqp.connect(URL);
}

function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

// `promise`, or a failure naming `what` after `ms` milliseconds.
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function run(main, name, timeoutMs = 60000) {
  const deadline = setTimeout(() => {
    console.error(`FAILED: ${name} ran past ${timeoutMs} ms`);
    process.exit(1);
  }, timeoutMs);
  main().then(
    () => {
      clearTimeout(deadline);
      console.log(`OK ${name}`);
      process.exit(0);
    },
    (error) => {
      console.error('FAILED:', error && error.stack ? error.stack : error);
      process.exit(1);
    },
  );
}

module.exports = { amqp, connect, check, within, run };
