"""aiohttp's own answers in the services' form.

A request aiohttp cannot parse (a malformed request line, a method or URL it refuses, a
line longer than 8190 bytes, a byte not allowed in a header) never reaches the app and its
middlewares: aiohttp's protocol layer answers it from ``RequestHandler.handle_error``, as
``text/plain`` quoting the raw request line, and logs the exception, request line included,
on ``aiohttp.server``. The request line can hold a ``?token=``. Here that answer is an
``application/problem+json`` like every other refusal (the same ``type``, ``title``,
``status``, ``detail`` and ``request_id``; the detail names the fault, never the bytes),
and the log is one ``request.malformed`` line naming the fault, without the request line.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import hdrs, http_exceptions, web
from aiohttp.http import HttpVersion11
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from services.http.middlewares import REQUEST_ID_HEADER
from services.http.problems import Problem, problem_response

log = structlog.get_logger("talk.http")

Handler = Callable[[BaseRequest], Awaitable[web.StreamResponse]]

# What each of aiohttp's parse errors means, in words that quote nothing of the request.
_FAULTS: list[tuple[type[BaseException], str]] = [
    (http_exceptions.LineTooLong, "the request line or a header line is too long"),
    (http_exceptions.BadHttpMethod, "the request method is malformed"),
    (http_exceptions.InvalidURLError, "the request target (URL) is malformed"),
    (http_exceptions.BadStatusLine, "the request line is malformed"),
    (http_exceptions.InvalidHeader, "a header is malformed"),
    (http_exceptions.ContentLengthError, "the body does not match its Content-Length"),
    (http_exceptions.TransferEncodingError, "the body's transfer encoding is malformed"),
    (http_exceptions.ContentEncodingError, "the body's content encoding is malformed"),
    (http_exceptions.BadHttpMessage, "the request is malformed"),
]


def fault_of(status: int, exc: BaseException | None) -> str:
    """The problem's ``detail`` for what aiohttp refused (never the request's own bytes)."""
    if status >= 500:
        return "an internal error occurred" if status == 500 else "the request timed out"
    for kind, detail in _FAULTS:
        if isinstance(exc, kind):
            return detail
    return "the request is malformed"


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors as problem+json."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        request_id = uuid.uuid4().hex
        fault = fault_of(status, exc)
        if status >= 500:  # an exception that escaped the app's own middleware: a bug
            log.error("request.unhandled", status=status, request_id=request_id,
                      error=type(exc).__name__ if exc else None, exc_info=exc)
        else:
            log.info("request.malformed", status=status, request_id=request_id,
                     error=type(exc).__name__ if exc else None, detail=fault)
        if request.writer.output_size > 0:  # as aiohttp: nothing more can be sent
            raise ConnectionError("response already started; cannot answer the error")
        response = problem_response(Problem(status, fault), request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        response.force_close()
        return response


class ProblemServer(web.Server):
    """``web.Server`` whose connections are :class:`ProblemRequestHandler`."""

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


def expect_checked(handle: Handler) -> Handler:
    """The app's handler behind a check of ``Expect``: aiohttp answers anything but
    ``100-continue`` before the app's middlewares, as ``text/plain`` (a 500 if the value is
    not ASCII); here it is a 417 problem like the rest."""

    async def handler(request: BaseRequest) -> web.StreamResponse:
        expect = request.headers.get(hdrs.EXPECT)
        if expect and request.version >= HttpVersion11 and expect.lower() != "100-continue":
            request_id = uuid.uuid4().hex
            response = problem_response(
                Problem(417, "only 'Expect: 100-continue' is supported"), request_id)
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        return await handle(request)

    return handler


class ProblemAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`ProblemServer`.

    aiohttp builds its ``Server`` inside ``AppRunner._make_server`` with no parameter for
    the connection class; the server it built is given this subclass's behaviour (the
    subclass adds no state, only ``__call__``) and its handler is wrapped by
    :func:`expect_checked`. tests/integration/test_bad_headers.py fails if an aiohttp
    upgrade changes that."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = ProblemServer
        server.request_handler = expect_checked(server.request_handler)
        return server
