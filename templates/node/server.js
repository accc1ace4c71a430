// {{name}}: a yun function, a plain Node.js web app (the `http` module only).
//
// yun starts it with PORT set, proxies requests to it and stops it when it has been idle.
const http = require("http");

const server = http.createServer((req, res) => {
  // Drain the body so a keep-alive connection can carry the next request.
  req.resume();
  req.on("end", () => {
    const out = `Hello from {{name}}!\n${req.method} ${req.url}\n`;
    res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(out) });
    res.end(out);
  });
});

const port = Number(process.env.PORT || 8080);
server.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
