// tcptrace close --runtime node: the closing calls made by Node.js's own net module.
//
//   node close.js '{"client_fd":N,"server_fd":M,"mode":"end","closer":"client","pending":0}'
//
// tcptrace connected and accepted the two sockets and passed both descriptors; this
// script owns them from then on, so every close on the wire is Node's doing. It reports on
// stdout, one JSON object a line (`t`: seconds since the epoch, the capture's clock):
//   {"type":"event","t":..,"side":"client"|"server","what":"socket.end()"}
//   {"type":"step","after":"..","expect":{"client":"FIN-WAIT-2",..},"recv_q":"client"?}
//       then waits for "ok" on stdin (tcptrace has asked `ss` where the sockets are)
//   {"type":"done","bytes":{"written":N,"delivered":M}}
'use strict';
const net = require('net');
const readline = require('readline');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const opts = isMainThread ? JSON.parse(process.argv[2]) : workerData.opts;
const closer = opts.closer;
const peer = closer === 'client' ? 'server' : 'client';
const UNREAD = 1000;          // bytes the peer sends the closer in `unread`
const CHUNK = 1000;           // each of the peer's writes in `half-close`

// Seconds since the epoch. A worker's performance.timeOrigin was measured 2 ms off the
// main thread's, so both threads use the shared monotonic clock plus the main's offset.
const mono = () => Number(process.hrtime.bigint()) / 1e9;
const offset = isMainThread
  ? (performance.timeOrigin + performance.now()) / 1000 - mono() : workerData.offset;
const now = () => mono() + offset;
const send = isMainThread ? (msg) => process.stdout.write(JSON.stringify(msg) + '\n')
  : (msg) => parentPort.postMessage(msg);
const event = (side, what, t = now()) => send({ type: 'event', t, side, what });

// Time the call from before it starts, like the Python runtime's events, and say how
// long it took: end() and destroy() return long before anything reaches the wire.
function call(side, what, fn) {
  const t = now();
  const result = fn();
  const took = Math.round((now() - t) * 1e6);
  const value = typeof result === 'boolean' ? ` ${result}` : '';
  event(side, `${what} returned${value} after ${took} µs`, t);
  return result;
}

function until(sock, ...names) {
  return new Promise((resolve) => {
    for (const name of names) sock.once(name, () => resolve(name));
  });
}

// A "paused" socket must be created paused: a socket wrapped around a descriptor starts
// reading at once, and pause() does not stop that (measured: 1000 bytes moved from the
// kernel into Node's buffer after pause()), so unread data would not stay in the kernel.
// allowHalfOpen: every FIN on the wire then comes from an end() this script calls, not
// from Node's automatic end() on 'end'.
function wrap(side, fd, paused) {
  const sock = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true,
    pauseOnCreate: paused });
  sock.received = 0;
  sock.on('data', (chunk) => {
    sock.received += chunk.length;
    if (opts.mode === 'half-close') event(side, `'data': ${chunk.length} bytes`);
  });
  sock.on('finish', () => event(side, "'finish': Node's shutdown() is done"));
  sock.on('end', () => event(side, `'end' (EOF) after ${sock.received} bytes`));
  sock.on('error', (err) => event(side, `'error': ${err.code}`));
  sock.on('close', (hadError) => event(side, `'close' (hadError ${hadError})`));
  return sock;
}

let C = null;   // the closer's socket
let P = null;   // the peer's socket (in a worker thread in `simultaneous`)
let written = 0;  // bytes the closer queued before its close call
const waiting = [];   // steps waiting for tcptrace's "ok"

function step(after, expect = {}, extra = {}) {
  send({ type: 'step', after, expect, ...extra });
  return new Promise((resolve) => waiting.push(resolve));
}

async function writePending() {
  if (!opts.pending) return;
  written = opts.pending;
  call(closer, `socket.write(${opts.pending} bytes)`, () => C.write(Buffer.alloc(opts.pending, 'x')));
  event(closer, `Node still holds ${C.writableLength} bytes (writableLength)`);
  await step(`${closer} wrote ${opts.pending} bytes`);
}

// The peer reads what is left, then closes too once it has seen the FIN. After an RST, a
// peer with data still queued reads it and then gets 'end', not ECONNRESET: libuv reports
// the hang-up after a partial read as EOF (uv__stream_io).
async function peerReadsAndCloses(afterReset = false) {
  const closed = until(P, 'close');
  P.resume();
  if (await until(P, 'end', 'error') === 'end') {
    if (afterReset) event(peer, "note: 'end', not ECONNRESET, although an RST arrived");
    await step(`${peer} read to 'end'`, afterReset ? { [closer]: 'CLOSED', [peer]: 'CLOSED' }
      : { [closer]: 'FIN-WAIT-2', [peer]: 'CLOSE-WAIT' });
    call(peer, 'socket.end()', () => { P.end(); });
  }
  await closed;
}

async function destroy() {
  await writePending();
  call(closer, 'socket.destroy()', () => { C.destroy(); });
  // With data queued the orphaned socket is still sending: no state to wait for.
  await step(`${closer} socket.destroy()`, opts.pending
    ? {} : { [closer]: 'FIN-WAIT-2', [peer]: 'CLOSE-WAIT' });
  await peerReadsAndCloses();
  await step(`${peer} closed`, { [closer]: 'TIME-WAIT', [peer]: 'CLOSED' });
}

const MODES = {
  async end() {
    await writePending();
    const closed = until(C, 'close');
    call(closer, 'socket.end()', () => { C.end(); });
    // With data still inside Node the kernel has not even been asked for a FIN yet.
    await step(`${closer} socket.end()`, opts.pending
      ? {} : { [closer]: 'FIN-WAIT-2', [peer]: 'CLOSE-WAIT' });
    await peerReadsAndCloses();
    await closed;
    await step(`${peer} closed`, { [closer]: 'TIME-WAIT', [peer]: 'CLOSED' });
  },

  destroy,

  async close() {
    event(closer, 'note: Node.js has no close(); socket.destroy() is close(2) on the descriptor');
    await destroy();
  },

  async reset() {
    await writePending();
    call(closer, 'socket.resetAndDestroy()', () => { C.resetAndDestroy(); });
    await step(`${closer} socket.resetAndDestroy()`, { [closer]: 'CLOSED', [peer]: 'CLOSED' });
    await peerReadsAndCloses(true);
  },

  async unread() {
    await writePending();
    call(peer, `socket.write(${UNREAD} bytes)`, () => P.write(Buffer.alloc(UNREAD, 'y')));
    // Destroy only once the bytes sit in the closer's kernel receive queue.
    await step(`${peer} wrote ${UNREAD} bytes, unread by the ${closer}`, {}, { recv_q: closer });
    call(closer, `socket.destroy() with ${UNREAD} bytes unread`, () => { C.destroy(); });
    await step(`${closer} socket.destroy()`, { [closer]: 'CLOSED', [peer]: 'CLOSED' });
    await peerReadsAndCloses(true);
  },

  async 'half-close'() {
    await writePending();
    const closed = until(C, 'close');
    call(closer, 'socket.end()', () => { C.end(); });
    await step(`${closer} socket.end()`, { [closer]: 'FIN-WAIT-2', [peer]: 'CLOSE-WAIT' });
    for (let i = 1; i <= 3; i++) {
      const target = C.received + CHUNK;
      call(peer, `socket.write(${CHUNK} bytes)`, () => P.write(Buffer.alloc(CHUNK, 'y')));
      while (C.received < target) await until(C, 'data');
    }
    await step(`${peer} wrote 3 chunks to the half-closed ${closer}`,
      { [closer]: 'FIN-WAIT-2', [peer]: 'CLOSE-WAIT' });
    call(peer, 'socket.end()', () => { P.end(); });
    await Promise.all([closed, until(P, 'close')]);
    await step(`${peer} socket.end()`, { [closer]: 'TIME-WAIT', [peer]: 'CLOSED' });
  },

  // One thread's two end() calls are sequential, and loopback delivers the first FIN
  // before the second shutdown() runs: measured, the FINs never crossed in 40 tries. So the
  // peer ends in a worker thread, the two released together (see endTogether).
  async simultaneous() {
    const flags = new Int32Array(new SharedArrayBuffer(8));
    const worker = new Worker(__filename, { workerData: { opts, flags, offset } });
    worker.on('message', send);
    const peerClosed = new Promise((resolve) => worker.once('exit', resolve));
    await new Promise((resolve) => worker.once('online', resolve));
    await endTogether(C, closer, flags);
    await peerClosed;
    const done = ['TIME-WAIT', 'CLOSED'];
    await step('both closed', { client: done, server: done });
  },
};

// The worker says it is ready and spins; the main thread, which has polled for that
// without blocking its loop, says go: both call end() within microseconds (measured 4-40
// µs, unless other processes keep a CPU busy). (Spinning on both sides from the start got the main thread preempted during
// the worker's start-up: the calls were milliseconds apart.) Both send their events only
// once closed, so reporting delays neither shutdown().
const READY = 0;
const GO = 1;
async function endTogether(sock, side, flags) {
  const closed = until(sock, 'close');
  if (isMainThread) {
    while (Atomics.load(flags, READY) === 0) await new Promise(setImmediate);
    Atomics.store(flags, GO, 1);
  } else {
    Atomics.store(flags, READY, 1);
    while (Atomics.load(flags, GO) === 0);
  }
  const t = now();
  sock.end();
  await closed;
  event(side, 'socket.end(), at the same moment as the other side', t);
}

if (isMainThread) {
  // The peer does not read until after the close call, except where reading is the
  // point; the closer reads, except in `unread`.
  const peerPaused = !['half-close', 'simultaneous'].includes(opts.mode);
  C = wrap(closer, opts[`${closer}_fd`], opts.mode === 'unread');
  if (opts.mode !== 'simultaneous') P = wrap(peer, opts[`${peer}_fd`], peerPaused);
  const stdin = readline.createInterface({ input: process.stdin });
  stdin.on('line', (line) => { if (line.trim() === 'ok' && waiting.length) waiting.shift()(); });
  stdin.on('close', () => process.exit(waiting.length ? 1 : 0));  // tcptrace went away
  MODES[opts.mode]().then(() => {
    // Nothing written, nothing owed (and in `simultaneous` P lives in the worker).
    send({ type: 'done', bytes: { written, delivered: written ? P.received : 0 } });
    stdin.close();
  }).catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  });
} else {
  // From the event loop, like the main thread: not from the script's first run, after
  // which the worker still has start-up work to do before its loop polls for the FIN.
  const sock = wrap(peer, opts[`${peer}_fd`], false);
  setImmediate(() => endTogether(sock, peer, workerData.flags));
}
