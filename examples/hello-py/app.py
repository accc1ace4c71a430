"""The smallest yun function in Python: answers every request with a fixed greeting."""

from componentize_py_types import Ok
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
        headers = Fields.from_list([("content-type", b"text/plain")])
        response = OutgoingResponse(headers)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        # The stream is a child of the body and must be released before the body is finished.
        with body.write() as stream:
            stream.blocking_write_and_flush(b"Hello, world!\n")
        OutgoingBody.finish(body, None)
