"""switch.ids: STAN, RRN, order id, ARN and the Luhn helpers.

Clocks are injected and frozen, so "many ids in one instant" is the worst
case every generator must survive without repeating itself.
"""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.ids import MAX_NODE_ID, ArnGenerator, OrderIdGenerator, RrnGenerator, StanAllocator, luhn_digit, luhn_ok

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


# -- order ids ------------------------------------------------------------------


def test_order_ids_are_17_digits_and_strictly_increasing_under_a_frozen_clock() -> None:
    g = OrderIdGenerator(node_id=7, clock=frozen)
    ids = [g.next() for _ in range(100_000)]
    assert all(len(i) == 17 and i.isdigit() for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(i[13:15] == "07" for i in ids)
    assert ids[0] == f"{int(T0 * 1000):013d}0700"


def test_order_ids_keep_increasing_when_the_clock_steps_back() -> None:
    now = [T0]
    g = OrderIdGenerator(node_id=1, clock=lambda: now[0])
    ids = []
    for t in (T0, T0 + 5, T0 - 60, T0 - 60, T0 + 5.001, T0 + 10):
        now[0] = t
        ids += [g.next() for _ in range(150)]
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_order_id_generators_with_different_node_ids_never_collide() -> None:
    a, b = OrderIdGenerator(node_id=1, clock=frozen), OrderIdGenerator(node_id=2, clock=frozen)
    assert {a.next() for _ in range(100_000)}.isdisjoint({b.next() for _ in range(100_000)})


@pytest.mark.parametrize("node", [-1, MAX_NODE_ID + 1])
def test_order_id_node_id_out_of_range_is_refused(node: int) -> None:
    with pytest.raises(ValueError):
        OrderIdGenerator(node_id=node)


# -- ARN --------------------------------------------------------------------------


def test_arn_is_23_digits_luhn_valid_with_bin_date_and_node() -> None:
    arn = ArnGenerator("412345", node_id=12, clock=frozen).next()
    assert len(arn) == 23 and arn.isdigit()
    assert luhn_ok(arn)
    assert arn[0] == "7" and arn[1:7] == "412345" and arn[7:11] == "3318" and arn[11:13] == "12"


def test_arns_under_a_frozen_clock_are_unique_luhn_valid_and_disjoint_between_nodes() -> None:
    a = ArnGenerator("412345", node_id=1, clock=frozen)
    b = ArnGenerator("412345", node_id=2, clock=frozen)
    from_a = [a.next() for _ in range(50_000)]
    from_b = {b.next() for _ in range(50_000)}
    assert len(set(from_a)) == len(from_a)
    assert all(len(x) == 23 and luhn_ok(x) for x in from_a)
    assert from_b.isdisjoint(from_a)


def test_a_restarted_arn_generator_continues_past_what_it_issued() -> None:
    now = [T0]
    before = ArnGenerator("412345", clock=lambda: now[0])
    issued = [before.next() for _ in range(5_000)]  # under 10,000 a second, the documented pace
    now[0] = T0 + 1
    after = ArnGenerator("412345", clock=lambda: now[0])
    assert after.next()[:-1] > max(issued)[:-1]


@pytest.mark.parametrize(("acquirer_bin", "node"), [("41234", 0), ("41234x", 0), ("412345", 100), ("412345", -1)])
def test_arn_generator_refuses_a_bad_bin_or_node(acquirer_bin: str, node: int) -> None:
    with pytest.raises(ValueError):
        ArnGenerator(acquirer_bin, node_id=node)
