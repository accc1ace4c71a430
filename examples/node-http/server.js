// A plain Node.js web app (the `http` module only) that yun runs as a resident process function.
//
// Deploy:  yun deploy nodehttp examples/node-http --runtime process --mode http --command "node server.js"
const http = require("http");

let served = 0;
const server = http.createServer((req, res) => {
  served += 1;
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url, "http://localhost");
    if (url.searchParams.get("print")) {
      console.log(url.searchParams.get("print"));
    }
    const out = JSON.stringify({
      runtime: "node",
      method: req.method,
      path: url.pathname,
      query: url.search.replace(/^\?/, ""),
      body: Buffer.concat(chunks).toString(),
      served,
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(out);
  });
});

const port = Number(process.env.PORT || 8080);
server.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
