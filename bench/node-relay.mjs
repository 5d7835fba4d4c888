// The floor of a Node relay, for `npm run bench`'s `node relay` path: two processes, one TLS
// connection per client, nothing but `pipe()` both ways (no framing, no parsing, no policy).
// What hoop costs above it is hoop's; what it costs above `ssh -L` is the runtime's.
//
//   node bench/node-relay.mjs server <port> <upstream port> <cert file> <key file>
//   node bench/node-relay.mjs client <port> <server port> <CA file>
//
// @see https://nodejs.org/api/stream.html#readablepipedestination-options
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer as netServer } from 'node:net';
import { connect as tlsConnect, createServer as tlsServer } from 'node:tls';

const [role, port, target, ...files] = process.argv.slice(2);

/** Relays `a` and `b` both ways; either failing ends both. */
function join(a, b) {
  a.setNoDelay(true);
  b.setNoDelay(true);
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}

const server =
  role === 'server'
    ? tlsServer({ cert: readFileSync(files[0]), key: readFileSync(files[1]) }, (s) => join(s, netConnect(Number(target), '127.0.0.1')))
    : netServer((c) => join(c, tlsConnect({ port: Number(target), host: '127.0.0.1', ca: readFileSync(files[0]), servername: 'localhost' })));
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
