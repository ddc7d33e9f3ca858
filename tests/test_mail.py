"""The mail outbox (switch/mail) and invoices by e-mail, end to end: the real runtime (PostgreSQL, vault),
the real SMTP client (aiosmtplib, http_front/outbound/smtp.py) and the real sink of ``isoswitch up``
(aiosmtpd, isoswitch/mailsink.py) on 127.0.0.1, the invoice API on the front of tests/test_http_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.smtp import SMTP
from pg import fresh_dsn, pg_dsn, scratch_dir  # noqa: F401  (fixtures)
from test_http_e2e import Front
from test_http_e2e import front as front  # fixture
from test_invoices import DROP, PUBLIC_REQUEST, body, create_invoice, keys_of
from waiting import wait_for

from http_front.outbound.smtp import SmtpSender
from isoswitch.mailsink import MailSink, read_mails
from switch.mail import Mail, MailConfig, Mailer, MailStore

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
FAST = {"poll_interval": 0.05, "backoff_base": 0.1, "backoff_cap": 0.2, "timeout": 5.0}


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    s = MailSink(tmp_path / "mail", port=0)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def mails(sink: MailSink) -> list[EmailMessage]:
    return read_mails(sink.directory)


def sending(front: Front, port: int, **cfg: Any) -> Mailer:
    """A mailer on the front's outbox whose worker sends to 127.0.0.1:``port`` (its own config: fast retries)."""
    config = MailConfig(port=port, **{**FAST, **cfg})
    mailer = Mailer(MailStore(front.runtime.db.pool, front.runtime.vault), config)
    mailer.start(SmtpSender(config))
    return mailer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def note(to: str = "ann@example.com", text: str = "Hello") -> Mail:
    return Mail(kind="notice", to=to, subject="A notice", text=text, html=f"<p>{text}</p>", reference="ref-1")


async def listed(front: Front, mail_id: int) -> dict[str, Any]:
    (row,) = await front.runtime.mail.store.list(mail_id=mail_id)
    return row


# -- the outbox ------------------------------------------------------------------------------------


async def test_a_mail_enqueued_is_sent_once_to_the_smtp_server_with_its_attempt_recorded(
    front: Front, sink: MailSink
) -> None:
    mailer = sending(front, sink.port)
    try:
        queued = await mailer.enqueue(note())
        (got,) = await wait_for(lambda: mails(sink), what="the mail in the sink")
        assert got["To"] == "ann@example.com" and got["Subject"] == "A notice"
        assert got["Message-ID"] == queued.message_id and got["From"] == MailConfig().from_address
        assert got.get_body(("plain",)).get_content() == "Hello\n"  # type: ignore[union-attr]
        assert got.get_body(("html",)).get_content() == "<p>Hello</p>\n"  # type: ignore[union-attr]
        row = await wait_for(lambda: _state(front, queued.id, "sent"))
        assert row["attempts"] == 1 and row["last_error"] is None and row["reference"] == "ref-1"
        assert [(a["attempt"], a["ok"]) for a in row["attempt_log"]] == [(1, True)]
        assert "message" not in row  # the list never shows the mail itself
    finally:
        await mailer.close()
    assert len(mails(sink)) == 1


async def _state(front: Front, mail_id: int, state: str) -> dict[str, Any] | None:
    row = await listed(front, mail_id)
    return row if row["state"] == state else None


async def test_a_send_that_fails_is_retried_with_backoff_until_the_server_takes_it(
    front: Front, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet: every attempt is refused
    mailer = sending(front, port)
    later = MailSink(tmp_path / "later", port=port)
    try:
        queued = await mailer.enqueue(note())
        row = await wait_for(lambda: _attempts(front, queued.id, 2), what="two failed attempts")
        assert row["state"] == "pending" and row["last_error"] and row["next_attempt_at"] is not None
        assert [a["ok"] for a in row["attempt_log"][:2]] == [False, False]
        assert all("onnect" in (a["detail"] or "") for a in row["attempt_log"][:2]), row  # refused connection
        await later.start()  # the server is back: the next retry goes through
        row = await wait_for(lambda: _state(front, queued.id, "sent"), what="sent after the retries")
        assert row["attempt_log"][-1]["ok"] is True and row["attempts"] >= 3
        assert len(read_mails(later.directory)) == 1
    finally:
        await mailer.close()
        await later.close()


async def _attempts(front: Front, mail_id: int, n: int) -> dict[str, Any] | None:
    row = await listed(front, mail_id)
    return row if len(row["attempt_log"]) >= n else None


async def test_attempts_used_up_leave_a_mail_failed_and_visible(front: Front) -> None:
    mailer = sending(front, free_port(), max_attempts=2)
    try:
        queued = await mailer.enqueue(note())
        row = await wait_for(lambda: _state(front, queued.id, "failed"), what="failed after 2 attempts")
        assert row["attempts"] == 2 and len(row["attempt_log"]) == 2 and row["next_attempt_at"] is None
        assert row["last_error"] == row["attempt_log"][-1]["detail"]
        assert await front.runtime.mail.store.depth() == (0, 1)
        scrape = await (await front.http.get("/metrics")).text()
        assert 'isoswitch_mail_outbox_depth{state="failed"} 1.0' in scrape
        assert 'isoswitch_mail_attempts_total{outcome="failed"}' in scrape
    finally:
        await mailer.close()


class _Refusing:
    """An SMTP server's handler that refuses every recipient for good (550)."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return "550 5.1.1 No such mailbox"


async def test_a_permanent_refusal_fails_the_mail_at_once_and_mail_resend_sends_it_again(
    front: Front,
    sink: MailSink,
    fresh_dsn: str,  # noqa: F811
) -> None:
    loop = asyncio.get_running_loop()
    refusing = await loop.create_server(lambda: SMTP(_Refusing(), loop=loop), "127.0.0.1", 0)
    mailer = sending(front, refusing.sockets[0].getsockname()[1])
    try:
        queued = await mailer.enqueue(note())
        row = await wait_for(lambda: _state(front, queued.id, "failed"), what="refused")
        assert row["attempts"] == 1 and row["last_error"].startswith("refused: 550"), row  # not retried
    finally:
        await mailer.close()
        refusing.close()
        await refusing.wait_closed()
    # The operator fixes the address book (here: a server that takes it) and sends it again from the CLI.
    out = await isoswitch(fresh_dsn, "mail", "list", "--state", "failed")
    (line,) = out.splitlines()
    assert orjson.loads(line)["id"] == queued.id and orjson.loads(line)["attempt_log"][0]["ok"] is False
    out = await isoswitch(fresh_dsn, "mail", "resend", str(queued.id), "--attempts", "3")
    assert orjson.loads(out) == {"id": queued.id, "state": "pending", "attempts": 3}
    mailer = sending(front, sink.port)
    try:
        row = await wait_for(lambda: _state(front, queued.id, "sent"), what="sent after the resend")
        assert [a["ok"] for a in row["attempt_log"]] == [False, True] and row["max_attempts"] == 4
    finally:
        await mailer.close()
    (got,) = mails(sink)
    assert got["Message-ID"] == queued.message_id  # the same mail, not a new one


async def isoswitch(dsn: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISOSWITCH_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "isoswitch", *args, env={**env, "DATABASE_URL": dsn}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_two_workers_sharing_the_outbox_send_each_mail_exactly_once(front: Front, sink: MailSink) -> None:
    queued = [await front.runtime.mail.enqueue(note(f"u{i}@example.com")) for i in range(12)]
    one, two = sending(front, sink.port, batch=3), sending(front, sink.port, batch=3)
    try:
        await wait_for(lambda: len(mails(sink)) >= 12, what="12 mails")
        for q in queued:
            await wait_for(lambda q=q: _state(front, q.id, "sent"))  # type: ignore[misc]
    finally:
        await one.close()
        await two.close()
    ids = sorted(m["Message-ID"] for m in mails(sink))
    assert ids == sorted(q.message_id for q in queued)  # each once
    assert (one.worker, two.worker) == (None, None)


async def test_the_outbox_keeps_the_message_sealed_and_a_rolled_back_mail_is_never_sent(
    front: Front, sink: MailSink
) -> None:
    pool = front.runtime.db.pool
    secret = "https://pay.example/p/SECRET-TOKEN"
    queued = await front.runtime.mail.enqueue(note(text=secret))
    raw = await pool.fetchval("SELECT message FROM mail_outbox WHERE id = $1", queued.id)
    assert b"SECRET-TOKEN" not in bytes(raw) and b"ann@example.com" not in bytes(raw)
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await front.runtime.mail.enqueue(note("bob@example.com"), conn=conn)
            raise RuntimeError("what the mail announces failed: the mail goes with it")
    mailer = sending(front, sink.port)
    try:
        await wait_for(lambda: _state(front, queued.id, "sent"))
    finally:
        await mailer.close()
    assert [m["To"] for m in mails(sink)] == ["ann@example.com"]
    assert SECRET_IN(mails(sink)[0], secret)


def SECRET_IN(msg: EmailMessage, text: str) -> bool:
    return text in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_mail_refuses_an_address_that_could_inject_headers() -> None:
    for bad in ("ann@example.com\r\nBcc: eve@example.com", "Ann <ann@example.com>", "ann", "ann@localhost"):
        with pytest.raises(ValueError):
            Mail(kind="notice", to=bad, subject="s", text="t")
    with pytest.raises(ValueError):
        Mail(kind="notice", to="ann@example.com", subject="s\r\nBcc: eve@example.com", text="t")


# -- invoices: carts ---------------------------------------------------------------------------------

CART = [
    {"name": "Green tea", "quantity": 2, "price": 12.5, "amount": 25, "article": "GT-1", "measure": "pcs"},
    {"name": "Honey <raw>", "quantity": 1.5, "price": 50, "amount": 75},
]


async def count(front: Front) -> int:
    _, doc = await front.call("GET", "/api/payment-invoices")
    return int(doc["meta"]["count"])


async def test_an_invoice_with_a_cart_shows_its_lines_and_may_take_its_amount_from_them(front: Front) -> None:
    inv = await create_invoice(front, reference_id="cart-1", cart=CART)
    assert inv["attributes"]["amount"] == 100
    assert inv["attributes"]["cart"] == [
        {"name": "Green tea", "quantity": 2, "price": 12.5, "amount": 25, "article": "GT-1", "measure": "pcs"},
        {"name": "Honey <raw>", "quantity": 1.5, "price": 50, "amount": 75},
    ]
    no_amount = await create_invoice(front, reference_id="cart-2", cart=CART, amount=DROP)
    assert no_amount["attributes"]["amount"] == 100  # seeds/000: "populated automatically" from the cart
    _, doc = await front.call("GET", f"/api/payment-invoices/{inv['id']}")
    assert doc["data"]["attributes"]["cart"] == inv["attributes"]["cart"]
    plain = await create_invoice(front, reference_id="cart-3")
    assert plain["attributes"]["cart"] is None


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"amount": 99}, {"cart": "The lines add up to 100.00, not the amount 99.00."}),
        (
            {"cart": [CART[0], {**CART[1], "amount": 74.99}]},
            {"cart[1].amount": "This value should be price times quantity = 75.00."},
        ),
        (
            {"cart": [{"name": "Bolt", "quantity": 3, "price": 0.333}]},
            {"cart[0].price": "This value should be an amount of USD of at least 0."},
        ),
        (
            {"cart": [{"name": "Gas", "quantity": 0.5, "price": 0.05}], "amount": DROP},
            {
                "cart[0].amount": "This value should be price times quantity, which is not a whole number of minor "
                "units (0.025)."
            },
        ),
        ({"cart": [{"name": "", "quantity": 0, "price": 1}]}, {"cart[0].name": ..., "cart[0].quantity": ...}),
        ({"cart": []}, {"cart": "This value should be a list of 1 to 200 line items."}),
    ],
)
async def test_a_cart_whose_lines_do_not_add_up_is_refused_naming_the_line_and_nothing_is_created(
    front: Front, change: dict[str, Any], errors: dict[str, Any]
) -> None:
    before = await count(front)
    status, doc = await front.call("POST", "/api/payment-invoices", body(**{"cart": CART, **change}))
    assert status == 422, doc
    assert set(doc["errors"]) == set(errors)
    assert all(v is ... or doc["errors"][k] == v for k, v in errors.items()), doc
    assert await count(front) == before


async def import_csv(front: Front, text: str | bytes, currency: str = "USD") -> tuple[int, Any]:
    resp = await front.http.post(
        f"/api/payment-invoices/cart-import?currency={currency}",
        data=text.encode() if isinstance(text, str) else text,
        headers={**front.auth, "Content-Type": "text/csv"},
    )
    return resp.status, orjson.loads(await resp.read())


async def test_a_csv_of_cart_lines_is_imported_whole_or_refused_with_every_bad_line_numbered(front: Front) -> None:
    good = '\ufeffname;quantity;price;article\nGreen tea;2;12.50;GT-1\n\n"Honey; raw";1.5;50;\n'
    status, doc = await import_csv(front, good)
    assert status == 200, doc
    attrs = doc["data"]["attributes"]
    assert (doc["data"]["type"], attrs["currency"], attrs["amount"]) == ("carts", "USD", 100)
    assert [(c["name"], c["quantity"], c["price"], c["amount"]) for c in attrs["cart"]] == [
        ("Green tea", 2, 12.5, 25), ("Honey; raw", 1.5, 50, 75),
    ]  # fmt: skip
    # The parsed cart is what a create takes.
    inv = await create_invoice(front, reference_id="from-csv", cart=attrs["cart"], amount=DROP)
    assert inv["attributes"]["amount"] == 100
    # Lines of the file, not rows: the quoted name on lines 3-4 is one row (refused: a name is one line).
    bad = 'name,quantity,price,amount\nTea,2,1.50,3\n"Cake\nslice",1,3,3\nJam,x,2.001,\nPie,1,2,2\nBun,1\n'
    status, doc = await import_csv(front, bad)
    assert status == 422
    assert doc["errors"] == {
        "line 3.name": "This value should be a line of text of 1 to 255 characters.",
        "line 5.quantity": "This value should be a number greater than 0, with at most 3 decimals.",
        "line 5.price": "This value should be an amount of USD of at least 0.",
        "line 7": "This line has 2 fields, the header 4.",
    }  # nothing of lines 2 and 6: a file with a bad row gives no cart at all
    status, doc = await import_csv(front, "title,qty\nTea,1\n")
    assert status == 422 and set(doc["errors"]) == {"line 1"}
    status, doc = await import_csv(front, good, currency="XXQ")
    assert status == 422 and set(doc["errors"]) == {"currency"}
    status, doc = await import_csv(front, b"name,quantity,price\n\xff,1,1\n")
    assert status == 400
    big = "name,quantity,price\n" + "Tea,1,1.00\n" * 200 + "x" * 256 * 1024
    assert (await import_csv(front, big))[0] == 413
    many = "name,quantity,price\n" + "Tea,1,1.00\n" * 201
    assert await import_csv(front, many) == (422, {"errors": {"file": "The file should hold 1 to 200 lines."}})


# -- invoices by e-mail -------------------------------------------------------------------------------


async def test_send_email_mails_the_invoice_with_its_cart_and_pay_link_as_text_and_html(
    front: Front, sink: MailSink
) -> None:
    front.runtime.mail.start(SmtpSender(MailConfig(port=sink.port)))
    status, doc = await front.call(
        "POST", "/api/payment-invoices", body(reference_id="mailed", cart=CART, send_email=True)
    )
    assert status == 201, doc
    inv, mail = doc["data"], doc["meta"]["mail"]
    assert mail["type"] == "invoice-mails" and mail["attributes"]["to"] == "somename@domain.com"
    (got,) = await wait_for(lambda: mails(sink), what="the invoice's mail")
    hpp_url = inv["attributes"]["hpp_url"]
    assert got["To"] == "somename@domain.com" and inv["attributes"]["serial_number"] in got["Subject"]
    assert got["Message-ID"] == mail["attributes"]["message_id"]
    text = got.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = got.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert hpp_url in text and "Green tea: 2 pcs x 12.50 = 25.00" in text and "Amount due: 100.00 USD" in text
    assert f'href="{hpp_url}"' in html and "Honey &lt;raw&gt;" in html and "<raw>" not in html
    assert "Hello John Wick," in text
    # Again by POST .../send (a second mail, same link); the list names the invoice.
    status, again = await front.call("POST", f"/api/payment-invoices/{inv['id']}/send")
    assert status == 202 and again["data"]["attributes"]["state"] == "pending"
    await wait_for(lambda: len(mails(sink)) == 2)
    rows = await front.runtime.mail.store.list(reference=inv["id"])
    assert len(rows) == 2 and {r["kind"] for r in rows} == {"invoice"}


async def test_an_invoice_is_mailed_only_to_a_valid_address_while_it_can_still_be_paid(front: Front) -> None:
    before = await count(front)
    customer = {"reference_id": "c1", "name": "Ann"}
    status, doc = await front.call("POST", "/api/payment-invoices", body(send_email=True, customer=customer))
    assert (status, doc["errors"]) == (422, {"customer.email": "This value should not be blank."})
    bad = {**customer, "email": "ann@example.com\r\nBcc: eve@example.com"}
    status, doc = await front.call("POST", "/api/payment-invoices", body(send_email=True, customer=bad))
    assert (status, doc["errors"]) == (422, {"customer.email": "This value is not a valid email address."})
    test_flow = {"service": "test_usd_test", "service_fields": {"status": "success"}, "send_email": True}
    status, doc = await front.call("POST", "/api/payment-invoices", body(**test_flow))
    assert (status, set(doc["errors"])) == (422, {"send_email"})
    assert await count(front) == before  # nothing created
    # A public key is written into web pages: it never sends mail to anyone.
    test_key, _ = await keys_of(front, "project")
    public = {**PUBLIC_REQUEST, "public_key": test_key, "send_email": True}
    status, doc = await front.call("POST", "/public-api/payment-invoices", public, headers={})
    assert status == 201 and await front.runtime.mail.store.list(reference=doc["data"]["id"]) == []
    # Paid: nothing left to pay, no mail.
    from test_invoices import pay

    inv = await create_invoice(front, reference_id="paid-then-mailed")
    await pay(front, inv)
    status, doc = await front.call("POST", f"/api/payment-invoices/{inv['id']}/send")
    assert status == 422 and set(doc["errors"]) == {"status"}, doc
    assert (await front.call("POST", "/api/payment-invoices/cpi_0000000000000000/send"))[0] == 404
    assert (await front.call("POST", f"/api/payment-invoices/{inv['id']}/send", headers=front.other))[0] == 404


def test_the_smtp_password_comes_from_the_environment_and_config_show_hides_it() -> None:
    from isoswitch.config import load, show
    from switch.settings import ConfigError

    s = load(env={"ISOSWITCH_MAIL__USERNAME": "relay-user", "ISOSWITCH_MAIL__PASSWORD": "s3cret-pw"})
    assert (s.runtime.mail.username, s.runtime.mail.password) == ("relay-user", "s3cret-pw")
    shown = show(s)
    assert 'password = "<hidden>"' in shown and "s3cret-pw" not in shown
    for env, what in (
        ({"ISOSWITCH_MAIL__TLS": "ssl"}, "tls must be one of none, starttls, tls"),
        ({"ISOSWITCH_MAIL__USERNAME": "relay-user"}, "username and password go together"),
        ({"ISOSWITCH_MAIL__FROM_ADDRESS": "a@b.c\r\nBcc: e@f.g"}, "from_address"),
    ):
        with pytest.raises(ConfigError, match=what):
            load(env=env)
