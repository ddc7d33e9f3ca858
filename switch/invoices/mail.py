"""An invoice by e-mail (seeds/000 "Invoice to e-mail", seeds/001 "Invoice"): the amount, the cart, the due
date and the link to the hosted payment page, as text and as HTML (every value escaped; no image, no
script, nothing from another host: the mail is read offline too).
"""

from __future__ import annotations

from datetime import UTC
from html import escape

from switch.invoices.cart import CartLine
from switch.invoices.model import Invoice
from switch.mail import Mail
from switch.money import from_minor

__all__ = ["invoice_mail"]

_CELL = 'style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:{align}"'


def _lines(invoice: Invoice) -> list[CartLine]:
    return [CartLine.from_stored(d) for d in invoice.cart or []]


def _text(invoice: Invoice, merchant: str, url: str, name: str | None, due: str) -> str:
    cur = invoice.currency
    out = [f"Hello {name}," if name else "Hello,", "", f"{merchant} sends you an invoice."]
    if invoice.description:
        out.append(invoice.description)
    out.append("")
    for line in _lines(invoice):
        measure = f" {line.measure}" if line.measure else ""
        price, total = from_minor(line.price, cur), from_minor(line.amount, cur)
        out.append(f"  {line.name}: {line.quantity:f}{measure} x {price} = {total}")
    out += [f"Amount due: {from_minor(invoice.amount, cur)} {cur}", f"Pay by {due} at:", url, ""]
    out.append(f"Invoice {invoice.serial_number}. If you were not expecting it, ignore this mail.")
    return "\n".join(out) + "\n"


def _html(invoice: Invoice, merchant: str, url: str, name: str | None, due: str) -> str:
    cur = invoice.currency
    left, right = _CELL.format(align="left"), _CELL.format(align="right")
    rows = "".join(
        f"<tr><td {left}>{escape(line.name)}</td><td {right}>{line.quantity:f}"
        f"{escape(' ' + line.measure) if line.measure else ''}</td><td {right}>{from_minor(line.price, cur)}</td>"
        f"<td {right}>{from_minor(line.amount, cur)}</td></tr>"
        for line in _lines(invoice)
    )
    cart = (
        f'<table id="cart" style="border-collapse:collapse;margin:1em 0"><thead><tr><th {left}>Item</th>'
        f"<th {right}>Qty</th><th {right}>Price</th><th {right}>Amount</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else ""
    )
    description = f"<p>{escape(invoice.description)}</p>" if invoice.description else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Invoice {escape(invoice.serial_number)}</title></head>"
        '<body style="font-family:sans-serif;max-width:36em;margin:auto">'
        f"<p>{'Hello ' + escape(name) + ',' if name else 'Hello,'}</p>"
        f"<p>{escape(merchant)} sends you an invoice.</p>{description}{cart}"
        f'<p id="amount"><strong>Amount due: {from_minor(invoice.amount, cur)} {escape(cur)}</strong></p>'
        f"<p>Pay by {escape(due)}:</p>"
        f'<p><a id="pay" href="{escape(url, quote=True)}" style="display:inline-block;padding:10px 20px;'
        f'background:#0a58ca;color:#fff;text-decoration:none;border-radius:4px">Pay {from_minor(invoice.amount, cur)}'
        f" {escape(cur)}</a></p>"
        f'<p style="color:#555;font-size:small">Or open this address: {escape(url)}<br>'
        f"Invoice {escape(invoice.serial_number)}. If you were not expecting it, ignore this mail.</p>"
        "</body></html>"
    )


def invoice_mail(invoice: Invoice, merchant: str, url: str, to: str) -> Mail:
    """The mail inviting ``to`` to pay ``invoice`` at ``url`` (its hpp_url)."""
    customer = invoice.customer or {}
    name = customer.get("name")
    name = str(name).strip() if name is not None and str(name).strip() else None
    due = invoice.expires.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    amount = f"{from_minor(invoice.amount, invoice.currency)} {invoice.currency}"
    merchant = " ".join(merchant.split())[:80]  # one line: it goes into the subject
    return Mail(
        kind="invoice",
        to=to,
        subject=f"Invoice {invoice.serial_number} from {merchant}: {amount}",
        text=_text(invoice, merchant, url, name, due),
        html=_html(invoice, merchant, url, name, due),
        project_id=invoice.project_id,
        reference=invoice.id,
    )
