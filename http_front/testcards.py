"""The test cards page (``GET /docs/test-cards``): card -> scenario -> HTTP status, failure_type, DE 39, 3-D Secure.

Made from data, once per process, never written by hand:

- the DE 39 each card gets comes from the simulator's built-in rules,
  ``acquirer_sim/default_rules.toml``, read as a file (the front never
  imports the simulator): a ``[[cards]]`` entry's ``response``, ``balance``,
  ``cvv`` and ``expiry``, and ``[issuer]`` ``bin_prefixes`` and
  ``default_balance`` for every other card;
- what a DE 39 becomes for the merchant is the switch's own answer:
  ``schemas/response_codes.json`` (through :func:`switch.translate.classify`),
  :data:`switch.orders.verdicts.VERDICTS` and the front's status table
  (:func:`http_front.orders.status.http_status`);
- ``schemas/test_cards.json`` holds the rest: the cards' order and wording
  (the seed's Testing table first) and their 3-D Secure outcomes.

The page has no script; its one inline style is allowed by its hash in the
Content-Security-Policy.

>>> outcome("05")
Outcome(http_status=402, failure_type='declined', order_status='declined', message='Do not honor')
>>> outcome("00").failure_type is None
True
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from http_front.orders.status import http_status
from schemas import SCHEMAS_DIR
from switch.orders.model import OrderStatus
from switch.orders.verdicts import VERDICTS, Exchanged, Sent
from switch.translate import Result, classify

__all__ = [
    "CARDS_FILE",
    "SIM_RULES_FILE",
    "TEST_CARDS_PATH",
    "CardRows",
    "Case",
    "Outcome",
    "build_page",
    "card_rows",
    "outcome",
    "page_csp",
    "render_page",
]

TEST_CARDS_PATH = "/docs/test-cards"
CARDS_FILE = SCHEMAS_DIR / "test_cards.json"
# Package data of acquirer_sim, installed next to http_front (pyproject: package-data), read as a file.
SIM_RULES_FILE = Path(__file__).resolve().parent.parent / "acquirer_sim" / "default_rules.toml"

OTHER_CARD = "Any other card"
OTHER_NUMBER = "Any other number"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an authorization answered with one DE 39 comes to for the merchant."""

    http_status: int
    failure_type: str | None  # None: approved (200, no failure body)
    order_status: str
    message: str  # iso_message, and failure_message when it failed


@dataclass(frozen=True, slots=True)
class Case:
    """One condition of a card (an amount, a CVV2, 3-D Secure data) and the DE 39 the simulator answers."""

    condition: str
    de39: str
    outcome: Outcome
    #: What the check of the page needs to send this case: amount (minor units), cvv, eci (DE 121).
    probe: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CardRows:
    """One card of the table (``pan`` is a label for the rows about every other card)."""

    pan: str
    scenario: str
    seed: bool
    cases: tuple[Case, ...]
    secure3d_1: str
    secure3d_2: str


def outcome(code: str) -> Outcome:
    """An authorization answered ``code``: the merchant's HTTP status, failure_type, order status, message."""
    kind, message = classify(code)
    row = VERDICTS[Exchanged(Sent.ANSWERED, Result(kind, code, message)).verdict]
    if row.error is None:
        return Outcome(200, None, OrderStatus.AUTHORIZED.value, message)
    status = row.made_order.value if row.made_order is not None else OrderStatus.ERROR.value
    return Outcome(http_status(row.error(message)), row.error.failure_type, status, message)


def _money(minor: int) -> str:
    return f"{minor // 100:,}.{minor % 100:02d}"


def _case(condition: str, code: str, **probe: Any) -> Case:
    return Case(condition[:1].upper() + condition[1:], code, outcome(code), probe)


def _rule_cases(rule: Mapping[str, Any], default_balance: int, sca_eci: Sequence[str]) -> list[Case]:
    """The simulator's checks of one ``[[cards]]`` entry in its order (acquirer_sim/issuer.py, _check_card)."""
    cases: list[Case] = []
    cvv = rule.get("cvv")
    balance = rule.get("balance")
    response = rule.get("response", "00")
    if rule.get("expiry") is not None:
        cases.append(_case(f"After its own expiry {rule['expiry']} (YYMM), whatever the request says", "54"))
    if cvv is not None:
        cases.append(_case(f"CVV2 other than {cvv}", "N7", cvv="999" if cvv != "999" else "998"))
    with_cvv = {"cvv": cvv} if cvv is not None else {}
    prefix = f"CVV2 {cvv}, " if cvv is not None else ""
    if response != "00":
        cases.append(_case(f"{prefix}any authorization", response, **with_cvv))
        if response == "A1":
            ecis = ", ".join(sca_eci)
            cases.append(_case(f"With 3-D Secure: ECI {ecis} in DE 121", "00", eci=sca_eci[0], **with_cvv))
        return cases
    limit = balance if balance is not None else default_balance
    if balance is not None:
        cases.append(_case(f"{prefix}amount up to {_money(limit)}", "00", amount=limit, **with_cvv))
        cases.append(_case(f"{prefix}amount above {_money(limit)}", "51", amount=limit + 1, **with_cvv))
    else:
        cases.append(_case(f"{prefix}any authorization", "00", **with_cvv))
    return cases


def card_rows(cards_file: Path = CARDS_FILE, rules_file: Path = SIM_RULES_FILE) -> list[CardRows]:
    """Every row of the page: the cards of ``cards_file``, then the rules' other cards, then every other card."""
    cards = json.loads(cards_file.read_text(encoding="utf-8"))
    rules = tomllib.loads(rules_file.read_text(encoding="utf-8"))
    issuer = rules.get("issuer", {})
    default_balance = int(issuer.get("default_balance", 100_000_000))
    prefixes = ", ".join(issuer.get("bin_prefixes", ()))
    sca_eci = list(cards["sca_eci"])
    by_pan = {r["pan"]: r for r in rules.get("cards", ())}
    default_3ds = cards["secure3d_default"]
    listed = [c["pan"] for c in cards["cards"]]
    entries = [*cards["cards"], *({"pan": pan} for pan in by_pan if pan not in listed)]
    out: list[CardRows] = []
    for entry in entries:
        rule = by_pan.get(entry["pan"], {})
        three = entry.get("secure3d", default_3ds)
        scenario = entry.get("scenario") or rule.get("note", "")
        scenario = scenario[:1].upper() + scenario[1:]
        cases = _rule_cases(rule, default_balance, sca_eci)
        seed = bool(entry.get("seed"))
        out.append(CardRows(entry["pan"], scenario, seed, tuple(cases), three["3ds1"], three["3ds2"]))
    any_card = (
        _case(f"Amount up to {_money(default_balance)} (the default balance)", "00", amount=default_balance),
        _case(f"Amount above {_money(default_balance)}", "51", amount=default_balance + 1),
    )
    out.append(
        CardRows(
            OTHER_CARD,
            f"A valid card number (Luhn check digit) starting with {prefixes}",
            False,
            any_card,
            default_3ds["3ds1"],
            default_3ds["3ds2"],
        )
    )
    unknown = (_case("Any authorization", "14"),)
    out.append(
        CardRows(
            OTHER_NUMBER, f"Another first digit than {prefixes}, or a wrong Luhn check digit", False, unknown, "—", "—"
        )
    )
    return out


# -- the page ---------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:90rem;color:#1b1b1b}"
    "table{border-collapse:collapse;width:100%;font-size:.9rem}"
    "th,td{border:1px solid #c8c8c8;padding:.35rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}td.pan{font-family:ui-monospace,monospace;white-space:nowrap}"
    "tbody:nth-of-type(even){background:#fafafa}.seed{font-size:.75rem;color:#555}"
)


def page_csp() -> str:
    """No script, nothing from other hosts; the page's one inline style by its hash."""
    digest = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def _e(text: object) -> str:
    return html.escape(str(text))


def _card_body(card: CardRows) -> str:
    span = f' rowspan="{len(card.cases)}"' if len(card.cases) > 1 else ""
    seed = '<br><span class="seed">seeds/003 test card</span>' if card.seed else ""
    rows = []
    for i, case in enumerate(card.cases):
        o = case.outcome
        cells = []
        if i == 0:
            cells.append(f'<th scope="rowgroup" class="pan"{span}>{_e(card.pan)}</th>')
            cells.append(f"<td{span}>{_e(card.scenario)}{seed}</td>")
        cells += [
            f"<td>{_e(case.condition)}</td>",
            f"<td>{o.http_status}</td>",
            f"<td>{_e(o.failure_type or '—')}</td>",
            f"<td>{_e(o.order_status)}</td>",
            f"<td>{_e(case.de39)} {_e(o.message)}</td>",
        ]
        if i == 0:
            cells.append(f"<td{span}>{_e(card.secure3d_1)}</td>")
            cells.append(f"<td{span}>{_e(card.secure3d_2)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<tbody>" + "\n".join(rows) + "</tbody>"


def render_page(rows: Sequence[CardRows], notes: Sequence[str]) -> bytes:
    head = "".join(
        f'<th scope="col">{h}</th>'
        for h in (
            "Card number",
            "Scenario",
            "Condition",
            "HTTP status",
            "failure_type",
            "Order status",
            "DE 39 (iso_response_code, iso_message)",
            "3-D Secure 1",
            "3-D Secure 2",
        )
    )
    body = "\n".join(_card_body(card) for card in rows)
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test cards</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Test cards</h1>
<p>What the simulated issuer host answers to an authorization (<code>POST /orders/authorize</code>),
by card number: its built-in rules (<code>acquirer_sim/default_rules.toml</code>; a rules file given to the
simulator with <code>--rules</code> changes them). The 3-D Secure columns are the simulated directory
server's and ACS's answers when 3-D Secure runs.</p>
<table>
<thead><tr>{head}</tr></thead>
{body}
</table>
<ul>{items}</ul>
<p><a href="/docs">API documentation</a> · <a href="/openapi.json">OpenAPI document</a></p>
</body>
</html>
""".encode()


def build_page(cards_file: Path = CARDS_FILE, rules_file: Path = SIM_RULES_FILE) -> bytes:
    """The page's bytes from the two data files."""
    notes = json.loads(cards_file.read_text(encoding="utf-8")).get("notes", [])
    return render_page(card_rows(cards_file, rules_file), notes)
