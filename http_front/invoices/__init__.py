"""The invoice API of seeds/002 (issue 12): ``/api/...`` behind HTTP Basic, ``/public-api/...`` by public key.

:func:`add_invoice_routes` registers the routes; :mod:`http_front.invoices.jsonapi`
keeps their failures in the seed's JSON:API shapes.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["add_invoice_routes"]

_SERVICE_ID = "{service_id:[A-Za-z0-9_]{1,64}}"
_INVOICE_ID = "{invoice_id:[A-Za-z0-9_]{1,64}}"


def add_invoice_routes(r: web.UrlDispatcher) -> None:
    from http_front.invoices import handlers, mailing, public, services

    r.add_get("/api/payment-services", services.list_services)
    r.add_get(f"/api/payment-services/{_SERVICE_ID}", services.get_service)
    r.add_post("/api/payment-invoices", handlers.create_invoice)
    r.add_get("/api/payment-invoices", handlers.list_invoices)
    r.add_get(f"/api/payment-invoices/{_INVOICE_ID}", handlers.get_invoice)
    r.add_post("/api/payment-invoices/cart-import", mailing.cart_import)
    r.add_post(f"/api/payment-invoices/{_INVOICE_ID}/send", mailing.send_invoice)
    # By public key, not HTTP Basic (http_front.auth skips "public:" routes; these check the key themselves).
    r.add_post("/public-api/payment-invoices", public.public_create, name="public:invoice-create")
    r.add_get(f"/public-api/payment-invoices/{_INVOICE_ID}", public.public_get, name="public:invoice-get")
    r.add_post("/public-api/payment-prerequest", public.prerequest, name="public:payment-prerequest")
    r.add_post("/public-api/payment-invoices/process", public.process_form, name="public:invoice-process")
