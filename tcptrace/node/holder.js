// tcptrace close --runtime node --mode kill|kill-unread: a Node.js process that owns one
// socket through the net module until it is killed.
//
//   node holder.js '{"fd":N,"paused":false}'
//
// tcptrace passes the descriptor and closes its own copy, so when this process dies the
// kernel's close of its descriptors is the only close. With "paused" the socket is
// created paused, so bytes the peer sends stay in the kernel receive queue (a socket
// wrapped around a descriptor otherwise starts reading at once). Reports on stdout, one
// JSON object a line (`t`: seconds since the epoch):
//   {"type":"ready"}                      the socket is wrapped; kill when you like
//   {"type":"data","t":..,"bytes":N}      Node read N bytes into its own memory
'use strict';
const net = require('net');

const opts = JSON.parse(process.argv[2]);
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const send = (msg) => process.stdout.write(JSON.stringify(msg) + '\n');

const sock = new net.Socket({ fd: opts.fd, readable: true, writable: true,
  allowHalfOpen: true, pauseOnCreate: opts.paused });
sock.on('data', (chunk) => send({ type: 'data', t: now(), bytes: chunk.length }));
sock.on('error', () => {});
send({ type: 'ready' });
// Alive until killed, or until standard input ends (tcptrace is gone): never outlives it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
