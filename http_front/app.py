"""The REST front: ``create_app(runtime, config)`` is the orders API of seeds/003.

Routes (every one behind HTTP Basic; ``:id`` is the order id, digits):

=======  ==========================  =====================================
GET      /ping                       {"date", "message": "PONG!"}
POST     /orders/authorize           authorize (2-stage; 1-stage with options.auto_charge)
POST     /orders/create              an order paid on the hosted page: 201, Location: the page
GET      /pay/:token                 the hosted payment page (no credentials: the token is one)
POST     /pay/:token                 its card form (http_front.pages)
POST     /orders/token_pay           authorize with a wallet token (Apple Pay / Google Pay), as DSRP
GET      /customers/:cid/cards       a oneclick customer's kept cards (masked)
GET      /orders/:id                 one order, ``expand=card,client,...``
GET      /orders/                    orders by filters, paged, links header
PUT      /orders/:id/charge          full or partial charge
PUT      /orders/:id/reverse         reversal of the authorization
PUT      /orders/:id/refund          full or partial refund
PUT      /orders/:id/cancel          reverse or refund by the order's status
POST     /orders/:id/rebill          new order on the parent's stored card
POST     /orders/:id/credit          OCT to the order's card
POST     /orders/credit              OCT to a card given now
POST     /orders/:id/complete        3-D Secure 1 completion {"PaRes"} (:mod:`http_front.orders.secure3d`)
POST     /orders/:id/complete3d20    3-D Secure 2 completion {"cres"}
POST     /orders/:id/resume          3-D Secure 2 after the 3DS Method
POST     /complete/secure3d          public: 3DS1 TermUrl (PaRes, MD) -> 303 to return_url
POST     /complete/secure3d20        public: 3DS2 notificationURL (cres, threeDSSessionData) -> 303
POST     /secure3d/rreq              public: the ACS's RReq
POST     /secure3d/method-done       public: the 3DS Method's notification
GET      /operations/                operations by filters, paged
GET      /exchange_rates/            rates by ``date`` or ``date_from``/``date_to``
GET      /metrics                    Prometheus metrics, no credentials (:mod:`http_front.metrics`)
GET      /health                     liveness, ``{"status": "ok"}``, no credentials
GET      /api/payment-services       seeds/002's services (JSON:API, paged; :mod:`http_front.invoices`)
GET      /api/payment-services/:id   one service, by id or code
POST     /api/payment-invoices       an invoice (seeds/002): its order waits, paid on its hosted page
GET      /api/payment-invoices       invoices, newest first by cursor; ``filter[reference_id]``
GET      /api/payment-invoices/:id   one invoice, its status read from its order
POST     /api/payment-links          a payment-link template (GET: list; GET/PATCH/DELETE /:id)
GET      /link/:slug                 public: a link's pre-payment page; POST makes the invoice, 303 to hpp_url
=======  ==========================  =====================================

``/portal/...`` is the merchant portal's HTML (:mod:`http_front.portal`: its own session cookie, no HTTP Basic).

``POST /public-api/payment-invoices`` and ``GET /public-api/payment-invoices/:id`` are the same invoices by
public key, without HTTP Basic (:mod:`http_front.invoices.public`); ``POST /public-api/payment-prerequest``
lists a currency's services by public key; ``POST /public-api/payment-invoices/process`` is the HTML form of a
payment link (303 to the invoice's page).

The list routes answer with and without the trailing slash. Middlewares,
outermost first: request metrics, failures to the seed's JSON shape, a 413 for a
declared body over ``client_max_size`` (before it is read), the per-address limit of
failed authentications, authentication, the per-project rate limit (when on)
(:mod:`http_front.ratelimit`), then the request's source for the audit log
(:mod:`switch.store.audit`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from http_front.auth import auth_middleware
from http_front.config import FrontConfig
from http_front.conn import declared_size_middleware
from http_front.docs import add_docs_routes
from http_front.errors import error_middleware
from http_front.idempotency import KEY_HEADER
from http_front.invoices import add_invoice_routes
from http_front.invoices.jsonapi import jsonapi_errors
from http_front.keys import CONFIG, RATES, RUNTIME, SCHEMAS
from http_front.links import add_link_routes
from http_front.logs import request_id_middleware
from http_front.metrics import health, metrics_handler, metrics_middleware
from http_front.orders import handlers, secure3d
from http_front.pages import add_page_routes
from http_front.portal import add_portal_routes
from http_front.ports import RuntimePort
from http_front.ratelimit import auth_guard_middleware, project_limit_middleware
from http_front.rates import ExchangeRates
from http_front.validation import RequestSchemas
from switch.logs import REQUEST_ID, new_request_id
from switch.store.audit import SOURCE, RequestSource

__all__ = ["create_app"]

_ID = "{order_id:[0-9]{1,20}}"


@web.middleware
async def _audit_source(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is calling, for the audit rows the orders service writes (never headers beyond these)."""
    key = request.headers.get(KEY_HEADER)
    source = RequestSource(
        ip=request.remote,
        request_id=REQUEST_ID.get() or new_request_id(),  # the X-Request-Id of the answer and the log lines
        idempotency_key=key[:256] if key is not None else None,
    )
    token = SOURCE.set(source)  # request_source()'s work without a generator: once per request
    try:
        return await handler(request)
    finally:
        SOURCE.reset(token)


async def _load_data(app: web.Application) -> AsyncIterator[None]:
    """Schemas compiled and rates read once, at start; dropped at stop."""
    config = app[CONFIG]
    app[SCHEMAS] = RequestSchemas.load(config.schemas_dir)
    app[RATES] = ExchangeRates.load(config.exchange_rates_path)
    yield


def create_app(runtime: RuntimePort, config: FrontConfig | None = None) -> web.Application:
    """The orders API over ``runtime`` (orders service, projects, idempotency), which the caller owns."""
    config = config or FrontConfig()
    app = web.Application(
        middlewares=[
            request_id_middleware,
            metrics_middleware,
            error_middleware,
            jsonapi_errors,  # inside the orders API's shapes: /api/ and /public-api/ answer seeds/002's
            declared_size_middleware(config.client_max_size),
            auth_guard_middleware(config.auth_failure_rate, config.auth_failure_burst),
            auth_middleware(config.realm),
            # Off (rate 0), the limit is no layer at all rather than one that passes every request on.
            *([project_limit_middleware(config.rate_limit, config.rate_burst)] if config.rate_limit > 0 else []),
            _audit_source,
        ],
        client_max_size=config.client_max_size,
    )
    app[RUNTIME] = runtime
    app[CONFIG] = config
    app.cleanup_ctx.append(_load_data)
    r = app.router
    r.add_get("/ping", handlers.ping)
    r.add_post("/orders/authorize", handlers.authorize)
    r.add_post("/orders/create", handlers.create)
    r.add_post("/orders/credit", handlers.credit)
    r.add_post("/orders/token_pay", handlers.token_pay)
    r.add_get("/customers/{customer_id:[A-Za-z0-9]{1,40}}/cards", handlers.customer_cards)
    for path in ("/orders/", "/orders"):
        r.add_get(path, handlers.list_orders)
    r.add_get(f"/orders/{_ID}", handlers.get_order)
    r.add_put(f"/orders/{_ID}/charge", handlers.charge)
    r.add_put(f"/orders/{_ID}/reverse", handlers.reverse)
    r.add_put(f"/orders/{_ID}/refund", handlers.refund)
    r.add_put(f"/orders/{_ID}/cancel", handlers.cancel)
    r.add_post(f"/orders/{_ID}/rebill", handlers.rebill)
    r.add_post(f"/orders/{_ID}/credit", handlers.credit_order)
    r.add_post(f"/orders/{_ID}/complete", secure3d.complete)
    r.add_post(f"/orders/{_ID}/complete3d20", secure3d.complete3d20)
    r.add_post(f"/orders/{_ID}/resume", secure3d.resume)
    r.add_post(secure3d.TERM_PATH, secure3d.page_complete, name="public:secure3d-term")
    r.add_post(secure3d.NOTIFICATION_PATH, secure3d.page_complete3d20, name="public:secure3d-notification")
    r.add_post(secure3d.RREQ_PATH, secure3d.rreq, name="public:secure3d-rreq")
    r.add_post(secure3d.METHOD_DONE_PATH, secure3d.method_done, name="public:secure3d-method-done")
    for path in ("/operations/", "/operations"):
        r.add_get(path, handlers.list_operations)
    for path in ("/exchange_rates/", "/exchange_rates"):
        r.add_get(path, handlers.exchange_rates)
    if config.metrics:
        r.add_get("/metrics", metrics_handler, name="public:metrics")
    r.add_get("/health", health, name="public:health")
    add_docs_routes(r)
    add_page_routes(app)
    add_invoice_routes(r)
    add_link_routes(r)
    add_portal_routes(app)
    return app
