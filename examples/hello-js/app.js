// The smallest yun function in JavaScript: answers every request with a fixed greeting.
//
// componentize-js embeds this module in StarlingMonkey (SpiderMonkey built for WebAssembly). The
// target world (wit/world.wit) exports wasi:http/incoming-handler, so the engine wires each call
// of `handle` to a service-worker style `fetch` event: no bindings to write by hand.
addEventListener('fetch', (event) =>
  event.respondWith(
    new Response('Hello, world!\n', {
      status: 200,
      headers: { 'content-type': 'text/plain' },
    }),
  ),
);
