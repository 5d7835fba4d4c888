// The floor of a Node relay, for `npm run bench`'s `node relay` paths: nothing but `pipe()` both
// ways (no framing, no parsing, no policy). `server` + `client` are two processes with one TLS
// connection per client between them (hoop connect's shape); `front` is one process that answers
// PostgreSQL's SSLRequest and terminates the client's own TLS (hoop direct's shape). What hoop
// costs above them is hoop's; what they cost above `ssh -L` is the runtime's and TLS's.
//
//   node bench/node-relay.mjs server <port> <upstream port> <cert file> <key file>
//   node bench/node-relay.mjs client <port> <server port> <CA file>
//   node bench/node-relay.mjs front <port> <upstream port> <cert file> <key file>
//
// @see https://nodejs.org/api/stream.html#readablepipedestination-options
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer as netServer } from 'node:net';
import { connect as tlsConnect, createSecureContext, createServer as tlsServer, TLSSocket } from 'node:tls';

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

/** PostgreSQL's SSLRequest: length 8, code 80877103. */
const SSL_REQUEST = 80877103;

/** Answers `c`'s SSLRequest with 'S', then relays its TLS, terminated here, to the upstream; anything else closes. */
function front(c, secureContext) {
  c.once('readable', function first() {
    const head = c.read(8);
    if (!head) return c.once('readable', first);
    if (head.readUInt32BE(4) !== SSL_REQUEST) return c.destroy();
    c.write('S');
    join(new TLSSocket(c, { isServer: true, secureContext }), netConnect(Number(target), '127.0.0.1'));
  });
}

const tlsFiles = () => ({ cert: readFileSync(files[0]), key: readFileSync(files[1]) });
const server =
  role === 'server'
    ? tlsServer(tlsFiles(), (s) => join(s, netConnect(Number(target), '127.0.0.1')))
    : role === 'front'
      ? ((ctx) => netServer((c) => front(c, ctx)))(createSecureContext(tlsFiles()))
      : netServer((c) => join(c, tlsConnect({ port: Number(target), host: '127.0.0.1', ca: readFileSync(files[0]), servername: 'localhost' })));
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
