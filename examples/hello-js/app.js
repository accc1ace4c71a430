// The smallest yun function in JavaScript: answers every request with a fixed greeting.
//
// componentize-js embeds this module in StarlingMonkey (SpiderMonkey built for WebAssembly) and
// exports `incomingHandler` as wasi:http/incoming-handler (see wit/world.wit). The handler uses
// the wasi:http types directly, like the Rust and Python examples.
//
// Why not the shorter service-worker style, `addEventListener('fetch', e => e.respondWith(...))`?
// With componentize-js 0.23.0 a fetch-event component answers only the first request an instance
// gets; the second fails with "FetchEvent#respondWith can't be called twice on the same event".
// It works with `yun deploy --instance per-request` only, and yun's default is `reuse`.
import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.10';

const encoder = new TextEncoder();
const GREETING = encoder.encode('Hello, world!\n');
const TEXT_PLAIN = encoder.encode('text/plain');

export const incomingHandler = {
  handle(_request, responseOut) {
    const response = new OutgoingResponse(Fields.fromList([['content-type', TEXT_PLAIN]]));
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = body.write();
    let written = true;
    try {
      stream.blockingWriteAndFlush(GREETING);
    } catch {
      // A write error means the client went away; there is nobody left to tell.
      written = false;
    }
    // The stream is a child of the body and must be gone before the body is finished.
    stream[Symbol.dispose]();
    if (written) {
      OutgoingBody.finish(body, undefined);
    }
  },
};
