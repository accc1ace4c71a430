"""examples/python-http/app.py with TCP_NODELAY on the connections it accepts (bench/process.sh).

http.server writes a response's head and body with two send calls. With Nagle's algorithm on
(the default of socketserver.StreamRequestHandler), the body waits for the ACK of the head, and
a client that delays its ACK (Linux: up to 40 ms) stalls every keep-alive response after the
first few. socketserver's own switch, disable_nagle_algorithm, turns Nagle off; everything else
is app.py unchanged (copied next to this file as app.py).
"""

import runpy
import socketserver

socketserver.StreamRequestHandler.disable_nagle_algorithm = True
runpy.run_path("app.py", run_name="__main__")
