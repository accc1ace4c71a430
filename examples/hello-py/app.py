"""The smallest yun function in Python: answers every request with a fixed greeting."""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        # The stream is a child of the body and must be released before the body is finished.
        with body.write() as stream:
            try:
                stream.blocking_write_and_flush(b"Hello, world!\n")
            except Err:
                # The client went away; there is nobody left to tell.
                return
        OutgoingBody.finish(body, None)
