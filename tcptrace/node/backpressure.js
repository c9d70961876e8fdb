// tcptrace backpressure: the Node.js writer.
//
//   node backpressure.js '<json options>'
//
// Connects from `bind` to host:port (or wraps the connected socket passed as `fd`, when
// tcptrace had to set SO_SNDBUF, which Node cannot), writes `bytes` bytes chunk by chunk and
// reports on stdout, one JSON object a line, `t` in seconds since the epoch
// ((performance.timeOrigin + performance.now()) / 1000, the capture's clock):
//   {"type":"hello", ...} {"type":"connected", ...}
//   {"type":"event","kind":"write_false"|"drain","app_buffer":writableLength, ...}
//   {"type":"sample","app_buffer":writableLength}      every sample_ms
//   {"type":"written"} {"type":"flushed"} {"type":"done","bytes":n,"digest":sha256}
// Chunk i is SHAKE-256(seed || i as u64 big-endian), like tcptrace/backpressure/stream.py.
'use strict';
const net = require('net');
const crypto = require('crypto');

const opts = JSON.parse(process.argv[2]);
const now = () => (performance.timeOrigin + performance.now()) / 1000;
function emit(type, fields) {
  process.stdout.write(JSON.stringify({ type, t: now(), ...fields }) + '\n');
}

const seed = Buffer.from(opts.seed, 'utf8');
function makeChunk(index, size) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(index));
  return crypto.createHash('shake256', { outputLength: size })
    .update(Buffer.concat([seed, counter])).digest();
}

emit('hello', { runtime: 'node', version: process.version });
const sock = opts.fd !== undefined && opts.fd !== null
  ? new net.Socket({ fd: opts.fd, readable: true, writable: true })
  : net.connect({ host: opts.host, port: opts.port, localAddress: opts.bind });

const digest = crypto.createHash('sha256');
let index = 0;
let written = 0;
let falseReturns = 0;
let lastWriteOk = true;
let sampler = null;

function onConnected() {
  emit('connected', {
    local: `${sock.localAddress}:${sock.localPort}`,
    peer: `${sock.remoteAddress}:${sock.remotePort}`,
    high_water_mark: sock.writableHighWaterMark,
  });
  sampler = setInterval(() => emit('sample', { app_buffer: sock.writableLength }),
    opts.sample_ms);
  writeMore();
}

sock.on('drain', () => {
  emit('event', { kind: 'drain', app_buffer: sock.writableLength,
    detail: "'drain': the write queue is empty again" });
  lastWriteOk = true;
  if (!opts.ignore && written < opts.bytes) writeMore();
});

function writeOne() {
  const size = Math.min(opts.chunk, opts.bytes - written);
  const data = makeChunk(index, size);   // a fresh chunk, like a real producer's
  index += 1;
  digest.update(data);
  written += size;
  const ok = sock.write(data);
  if (!ok) {
    falseReturns += 1;
    if (lastWriteOk) {
      emit('event', { kind: 'write_false', app_buffer: sock.writableLength,
        detail: `socket.write() returned false (writableLength >= ${sock.writableHighWaterMark})` });
    }
  }
  lastWriteOk = ok;
  return ok;
}

function writeMore() {
  while (written < opts.bytes) {
    const ok = writeOne();
    if (opts.ignore) {          // keep writing regardless; yield so timers still run
      if (written < opts.bytes) { setImmediate(writeMore); return; }
      break;
    }
    if (!ok) {
      if (written < opts.bytes) return;   // wait for 'drain', which calls writeMore()
      break;                    // the last write was refused: finish() waits for 'drain'
    }
  }
  finish();
}

function finish() {
  emit('written', { bytes: written, app_buffer: sock.writableLength, false_returns: falseReturns });
  const end = () => sock.end();
  // 'drain' is not emitted after end(): wait for it first when one is owed.
  if (sock.writableNeedDrain) sock.once('drain', end); else end();
}

sock.on('finish', () => emit('flushed', { app_buffer: sock.writableLength }));
sock.on('close', () => {
  if (sampler) clearInterval(sampler);
  emit('done', { bytes: written, digest: digest.digest('hex'), false_returns: falseReturns });
});
sock.on('error', (err) => {
  emit('error', { message: `${err.code || ''} ${err.message}`.trim() });
  process.exitCode = 1;
});
sock.resume();  // the reader sends nothing; do not let an unread EOF keep us open

if (opts.fd !== undefined && opts.fd !== null) onConnected();
else sock.once('connect', onConnected);
process.on('SIGINT', () => { sock.destroy(); process.exit(130); });
process.on('SIGTERM', () => { sock.destroy(); process.exit(143); });
