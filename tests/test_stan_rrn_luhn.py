"""Identifiers made outside the database: the STAN (switch.stan), the bench RRNs (bench.rrn), Luhn (wire.cards).

Order ids, RRNs and ARNs of the switch come from the database: tests/test_store_ids.py.

Clocks are injected and frozen, so "many ids in one instant" is the worst
case every generator must survive without repeating itself.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.rrn import RrnGenerator
from switch.stan import StanAllocator
from switch.wire.cards import luhn_digit, luhn_ok

pytestmark = pytest.mark.timeout(30)

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC: year digit 3, day 318, hour 22


def frozen(t: float = T0) -> float:
    return t


# -- Luhn -------------------------------------------------------------------

VALID_CARDS = [
    "4111111111111111",  # Visa test cards
    "4012888888881881",
    "4000000000000002",
    "5555555555554444",  # Mastercard
    "5105105105105100",
    "2223003122003222",
    "378282246310005",  # Amex
    "371449635398431",
    "6011111111111117",  # Discover
    "6011000990139424",
    "3530111333300000",  # JCB
    "30569309025904",  # Diners
    "79927398713",  # the textbook example
]


@pytest.mark.parametrize("pan", VALID_CARDS)
def test_luhn_accepts_known_test_cards_and_computes_their_check_digit(pan: str) -> None:
    assert luhn_ok(pan)
    assert luhn_digit(pan[:-1]) == pan[-1]


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111112",
        "79927398710",
        "5555555555554445",
        "",
        "7",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        " 4111111111111111",
        "411111111111111x",
        # ARABIC-INDIC DIGITs ZERO and ONE: isdigit() is true, and the Luhn sum
        # computed from their code points "passes"; they are not card digits.
        "41111111111111\u06604",
        "41111111111111\u06612",
        "\u00b2" * 16,
    ],
)
def test_luhn_rejects_wrong_check_digits_and_anything_but_ascii_digits(number: str) -> None:
    assert not luhn_ok(number)


@given(st.text("0123456789", min_size=1, max_size=30))
def test_luhn_digit_makes_any_payload_valid_and_any_single_digit_change_invalid(payload: str) -> None:
    number = payload + luhn_digit(payload)
    assert luhn_ok(number)
    for i, ch in enumerate(number):
        for other in "0123456789":
            if other != ch:
                assert not luhn_ok(number[:i] + other + number[i + 1 :])


# -- STAN ---------------------------------------------------------------------


def test_stan_is_six_digits_wraps_after_999999_and_never_is_000000() -> None:
    a = StanAllocator(start=999_997)
    assert [a.next(set()) for _ in range(4)] == ["999998", "999999", "000001", "000002"]
    assert StanAllocator().next(set()) == "000001"
    assert StanAllocator(start=1_000_000).next(set()) == "000001"


def test_stan_skips_every_stan_in_use_across_the_wrap() -> None:
    a = StanAllocator(start=999_997)
    in_use = {"999998", "999999", "000001", "000003"}
    assert a.next(in_use) == "000002"
    assert a.next(in_use) == "000004"


def test_stan_allocator_cycles_through_all_999999_values_before_repeating() -> None:
    a = StanAllocator(start=123_456)
    seen = {a.next(()) for _ in range(999_999)}
    assert len(seen) == 999_999
    assert "000000" not in seen
    assert a.next(()) == "123457"


def test_stan_allocator_returns_the_one_free_stan_and_raises_when_none_is_free() -> None:
    class AllBut:
        def __init__(self, free: str | None) -> None:
            self.free = free

        def __contains__(self, stan: object) -> bool:
            return stan != self.free

    assert StanAllocator(start=5).next(AllBut("000005")) == "000005"  # found after a full lap
    with pytest.raises(RuntimeError):
        StanAllocator(start=5).next(AllBut(None))


# -- RRN ------------------------------------------------------------------------


def test_rrn_is_twelve_digits_ydddhh_then_node_and_sequence() -> None:
    rrn = RrnGenerator(node_id=3, clock=frozen).next()
    assert len(rrn) == 12 and rrn.isdigit()
    t = time.gmtime(T0)
    assert rrn[:6] == f"{t.tm_year % 10}{t.tm_yday:03d}{t.tm_hour:02d}" == "331822"
    assert rrn[6] == "3"


def test_rrns_from_one_generator_in_one_hour_do_not_repeat() -> None:
    g = RrnGenerator(node_id=1, clock=frozen)
    rrns = [g.next() for _ in range(100_000)]  # the documented capacity per node per hour
    assert len(set(rrns)) == len(rrns)
    assert {r[:7] for r in rrns} == {"3318221"}


def test_rrns_from_nodes_with_different_ids_never_collide() -> None:
    a, b = RrnGenerator(node_id=1, clock=frozen), RrnGenerator(node_id=2, clock=frozen)
    assert {a.next() for _ in range(20_000)}.isdisjoint({b.next() for _ in range(20_000)})


def test_rrn_hour_prefix_follows_the_clock() -> None:
    now = [T0]
    g = RrnGenerator(clock=lambda: now[0])
    first = g.next()
    now[0] = T0 + 3600
    second = g.next()
    assert first[:6] == "331822" and second[:6] == "331823"


def test_a_restarted_rrn_generator_continues_past_what_it_issued() -> None:
    now = [T0]
    before = RrnGenerator(node_id=4, clock=lambda: now[0])
    issued = [before.next() for _ in range(20)]  # under 27 a second, the documented pace
    now[0] = T0 + 1
    after = RrnGenerator(node_id=4, clock=lambda: now[0])
    assert int(after.next()) > max(int(r) for r in issued)


@pytest.mark.parametrize("node", [-1, 10])
def test_rrn_node_id_must_be_one_digit(node: int) -> None:
    with pytest.raises(ValueError):
        RrnGenerator(node_id=node)
