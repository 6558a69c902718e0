"""``route``: a server that dispatches connections with a werkzeug URL map.

As websockets' ``route``: each rule's endpoint is a connection handler, called as
``endpoint(connection, **values)`` with the values its URL converters captured.
The routing runs in ``process_request``, after the application's own hook (a
response from that one wins): a path that no rule matches gets 404, a redirect
that werkzeug asks for (``redirect_to``, strict slashes) gets 302 with
``Location``.  werkzeug is an optional dependency, imported when ``route`` is
called: ``pip install 'picows[router]'``.
"""

from __future__ import annotations

import http
import ssl as ssl_module
import urllib.parse
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

from ..compat import Request, Response
from .server import Server, ServerConnection, ServerHandshakeConnection, serve
from .utils import sync_hook

if TYPE_CHECKING:
    from werkzeug.routing import Map

__all__ = ["Router", "route"]

_INSTALL_HINT = "pip install 'picows[router]' (or pip install werkzeug)"

#: The connection as the routing hooks see it: during the handshake, ours is a
#: ServerHandshakeConnection (websockets passes its ServerConnection).
HookConnection = Union[ServerHandshakeConnection, ServerConnection]


def _require_werkzeug() -> Any:
    """werkzeug's Map class; ImportError naming what to install when it's missing."""
    try:
        from werkzeug.routing import Map
    except ImportError as exc:
        raise ImportError(f"route() requires werkzeug: {_INSTALL_HINT}") from exc
    return Map


class Router:
    """Dispatches connections of :func:`route` to the handlers of ``url_map``.

    Subclass it (and pass ``create_router=``) to change how a server name is
    found, what a redirect or a miss answers, or how handlers are called.
    """

    def __init__(
        self, url_map: Map, server_name: Optional[str] = None, url_scheme: str = "ws"
    ) -> None:
        self.url_map = url_map
        self.server_name = server_name
        self.url_scheme = url_scheme
        # Every rule is for WebSocket requests: werkzeug then matches them with the
        # ws:// or wss:// scheme the map is bound to.
        for rule in url_map.iter_rules():
            rule.websocket = True

    def get_server_name(self, connection: HookConnection, request: Request) -> str:
        """The host the map is bound to: ``server_name``, else the Host header."""
        if self.server_name is not None:
            return self.server_name
        return request.headers["Host"]

    def redirect(self, connection: HookConnection, url: str) -> Response:
        response = connection.respond(http.HTTPStatus.FOUND, f"Found at {url}")
        response.headers["Location"] = url
        return response

    def not_found(self, connection: HookConnection) -> Response:
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found")

    def route_request(self, connection: HookConnection, request: Request) -> Optional[Response]:
        """Match ``request``: None (and the handler set on ``connection``) if a rule
        matches, else the redirect or 404 response."""
        from werkzeug.exceptions import NotFound
        from werkzeug.routing import RequestRedirect

        adapter = self.url_map.bind(
            server_name=self.get_server_name(connection, request), url_scheme=self.url_scheme
        )
        parsed = urllib.parse.urlparse(request.path)
        try:
            handler, kwargs = adapter.match(path_info=parsed.path, query_args=parsed.query)
        except RequestRedirect as redirect:
            return self.redirect(connection, redirect.new_url)
        except NotFound:
            return self.not_found(connection)
        connection.handler = handler
        connection.handler_kwargs = kwargs
        return None

    async def handler(self, connection: ServerConnection) -> None:
        """The server's connection handler: the matched endpoint, with its values."""
        assert connection.handler is not None  # route_request found one
        await connection.handler(connection, **connection.handler_kwargs)


def route(
    url_map: Map,
    *args: Any,
    server_name: Optional[str] = None,
    ssl: Union[ssl_module.SSLContext, Literal[True], None] = None,
    create_router: Optional[Callable[..., Router]] = None,
    **kwargs: Any,
) -> Server:
    """Create a WebSocket server that dispatches connections with ``url_map``.

    Takes :func:`~picows.websockets.serve`'s arguments, except that ``url_map``
    (a :class:`werkzeug.routing.Map` whose endpoints are connection handlers)
    replaces the handler.  ``server_name`` is the host clients see (for
    redirects behind a proxy; default: the Host header).  ``ssl=True`` builds
    ``wss://`` redirects without serving TLS (a proxy terminates it); an
    SSLContext serves TLS.  ``create_router`` makes the :class:`Router`.
    """
    map_class = _require_werkzeug()
    if not isinstance(url_map, map_class):
        # Upstream picows' tests call route(None) and expect NotImplementedError.
        raise NotImplementedError(
            f"route() serves a werkzeug.routing.Map, not {type(url_map).__name__}"
        )
    url_scheme = "ws" if ssl is None else "wss"
    if ssl is not None and ssl is not True:  # True: TLS is terminated by a proxy
        kwargs["ssl"] = ssl
    router = (create_router or Router)(url_map, server_name, url_scheme)
    own_hook: Optional[Callable[..., Any]] = kwargs.pop("process_request", None)

    def process_request(connection: HookConnection, request: Request) -> Optional[Response]:
        if own_hook is not None:
            response = sync_hook(own_hook(connection, request), "process_request")
            if response is not None:
                return response  # type: ignore[no-any-return]
        return router.route_request(connection, request)

    handler: Callable[[ServerConnection], Awaitable[None]] = router.handler
    return serve(handler, *args, process_request=process_request, **kwargs)
