// hello.js: the Node.js peer of bench/realload/run.sh. An HTTP/1.1
// "Hello, World!" server on Node's http module (libuv underneath), as a
// Node user would write it.
//
//   node hello.js PORT    (0: a free port)
//
// Prints "serving on 127.0.0.1:PORT" once it accepts connections.
'use strict';
const http = require('http');

const body = 'Hello, World!';
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
// Node closes idle keep-alive connections after 5 s by default; the load
// tool keeps them busy, but 1,000 of them must not be dropped between runs.
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log(`serving on 127.0.0.1:${server.address().port}`);
});
