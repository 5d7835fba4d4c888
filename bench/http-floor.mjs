// The HTTP bench's floor: the least a Node gateway does per request. A Node HTTP server on
// 127.0.0.1 (the port on stdout) that forwards each request to the API (BENCH_API_PORT) with Node's
// HTTP client on keep-alive connections, adds the bearer token, and pipes the answer back; no TLS,
// no policy, masking or recording.
import { Agent, createServer, request } from 'node:http';

const port = Number(process.env.BENCH_API_PORT);
const authorization = `Bearer ${process.env.BENCH_API_TOKEN}`;
const agent = new Agent({ keepAlive: true });
const server = createServer((req, res) => {
  const up = request({ host: '127.0.0.1', port, path: req.url, method: req.method, agent, headers: { ...req.headers, authorization } }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
