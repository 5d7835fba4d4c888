// The HTTP bench's API: a Node server on 127.0.0.1 (the port on stdout) answering every request
// with a small JSON list of customers (a card number and an email for masking to find), to a
// caller with the bench's bearer token.
import { createServer } from 'node:http';

const token = `Bearer ${process.env.BENCH_API_TOKEN}`;
const body = JSON.stringify(Array.from({ length: 10 }, (_, i) => ({ id: i, name: `Customer ${i}`, email: `c${i}@shop.example`, card: '4111 1111 1111 1111', note: 'x'.repeat(40) })));
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.headers.authorization !== token) return void res.writeHead(401).end();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
