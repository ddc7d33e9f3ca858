"""acquirer_sim rules and issuer decisions, without sockets."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest
from sim_helpers import MessageFactory

from acquirer_sim import FaultRule, Issuer, RulesError, default_rules, load_rules
from acquirer_sim.rules import parse_rules
from switch.wire.codec import Message

CARD = "4111111111111111"

# 2026-03-15 12:00 UTC: a fixed "now" for the expiry rule.
NOW = float(calendar.timegm((2026, 3, 15, 12, 0, 0)))


def make_issuer(**kw: object) -> Issuer:
    return Issuer(default_rules(), seed=1, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


@pytest.fixture
def issuer() -> Issuer:
    return make_issuer()


@pytest.fixture
def mf() -> MessageFactory:
    return MessageFactory()


def answer(issuer: Issuer, msg: Message) -> Message:
    resp = issuer.handle(msg)
    assert resp is not None
    return resp


# -- the rules file -------------------------------------------------------
def test_default_rules_hold_every_test_card_of_the_orders_api() -> None:
    cards = default_rules().card_table()
    assert cards["4111111111111111"].response == "00"
    assert cards["2222400060000007"].response == "00"
    assert cards["4276990011343663"].response == "05"
    assert cards["5555555555555599"].response == "96"
    assert cards["4000000000000002"].response == "59"
    assert cards["4276838748917319"].response == "00"
    assert cards["4000000000003220"].response == "A1"
    assert cards["5105105105105100"].balance == 10_000
    assert cards["4012888888881881"].cvv == "123"
    assert default_rules().faults == ()


def test_rules_file_is_merged_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[issuer]
default_balance = 5000
auth_code = "alnum"

[[cards]]
pan = "4111111111111111"
response = "51"

[[cards]]
pan = "4242424242424242"
balance = 77

[[faults]]
action = "delay"
delay_ms = 20
mti = "0100"
""",
        encoding="utf-8",
    )
    rules = load_rules(path)
    cards = rules.card_table()
    assert rules.issuer.default_balance == 5000
    assert rules.issuer.bin_prefixes == ("2", "4", "5")  # kept from the defaults
    assert rules.issuer.auth_code == "alnum"
    assert cards["4111111111111111"].response == "51"  # replaced by pan
    assert cards["4242424242424242"].balance == 77  # added
    assert cards["4276990011343663"].response == "05"  # untouched default
    assert rules.faults == (FaultRule("delay", mti="0100", delay_ms=20),)


def test_a_faults_key_in_the_rules_file_replaces_the_fault_list(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("faults = []\n", encoding="utf-8")
    assert load_rules(path).faults == ()


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"issuer": {"balence": 1}}, "unknown key"),
        ({"cards": [{"pan": "4111111111111111", "response": "ABC"}]}, "response"),
        ({"cards": [{"pan": "41111111111111x1"}]}, "pan"),
        ({"cards": [{"pan": "4111111111111111", "cvv": "12"}]}, "cvv"),
        ({"cards": [{"pan": "4111111111111111"}, {"pan": "4111111111111111"}]}, "twice"),
        ({"faults": [{"action": "explode"}]}, "action"),
        ({"faults": [{"action": "delay", "rate": 1.5}]}, "rate"),
        ({"issuer": {"bin_prefixes": []}}, "bin_prefixes"),
        ({"issuer": {"auth_code": "emoji"}}, "auth_code"),
    ],
)
def test_invalid_rules_are_refused_with_a_typed_error(doc: dict[str, object], fragment: str) -> None:
    with pytest.raises(RulesError, match=fragment):
        parse_rules(doc)


def test_rules_errors_never_show_a_full_pan_or_cvv() -> None:
    with pytest.raises(RulesError) as err:
        parse_rules({"cards": [{"pan": "4111111111111111", "cvv": "98765"}]})
    assert "4111111111111111" not in str(err.value)
    assert "98765" not in str(err.value)
    assert "411111****1111" in str(err.value)


def test_an_unreadable_rules_file_is_a_rules_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[issuer\n", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(bad)
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")


# -- authorization decisions ---------------------------------------------
@pytest.mark.parametrize(
    ("pan", "code"),
    [
        ("4111111111111111", "00"),
        ("2222400060000007", "00"),
        ("4276990011343663", "05"),
        ("5555555555555599", "96"),
        ("4000000000000002", "59"),
        ("4276838748917319", "00"),
        ("4000000000003220", "A1"),
        ("4242424242424242", "00"),  # any other valid card of ours approves
        ("4111111111111112", "14"),  # not Luhn-valid
        ("6011000990139424", "14"),  # Luhn-valid, BIN not ours
        ("41111111111", "14"),  # too short
    ],
)
def test_each_card_gets_its_documented_answer(issuer: Issuer, mf: MessageFactory, pan: str, code: str) -> None:
    resp = answer(issuer, mf.auth(pan))
    assert resp["t"] == "0110"
    assert resp["39"] == code
    if code == "00":
        assert len(resp["38"]) == 6 and resp["38"].isdigit()
    else:
        assert "38" not in resp


@pytest.mark.parametrize("eci", ["05", "02", "06", "01"])
def test_sca_soft_decline_approves_with_3ds_data(issuer: Issuer, mf: MessageFactory, eci: str) -> None:
    assert answer(issuer, mf.auth("4000000000003220", **{"121": eci, "122": "CAVV" * 7}))["39"] == "00"


def test_sca_soft_decline_stays_without_authentication(issuer: Issuer, mf: MessageFactory) -> None:
    assert answer(issuer, mf.auth("4000000000003220", **{"121": "07"}))["39"] == "A1"


def test_amount_over_the_available_balance_answers_51(issuer: Issuer, mf: MessageFactory) -> None:
    assert answer(issuer, mf.auth("5105105105105100", 10_001))["39"] == "51"
    assert answer(issuer, mf.auth("5105105105105100", 6_000))["39"] == "00"
    # The hold counts: 6,000 of 10,000 are held, 4,001 more is too much.
    assert answer(issuer, mf.auth("5105105105105100", 4_001))["39"] == "51"
    assert answer(issuer, mf.auth("5105105105105100", 4_000))["39"] == "00"


def test_expiry_before_the_current_month_answers_54(issuer: Issuer, mf: MessageFactory) -> None:
    assert answer(issuer, mf.auth(expiry="2602"))["39"] == "54"
    assert answer(issuer, mf.auth(expiry="2603"))["39"] == "00"  # valid through its month
    assert answer(issuer, mf.auth(expiry="2613"))["39"] == "54"  # no such month
    assert answer(issuer, mf.auth(expiry="26AB"))["39"] == "30"


def test_wrong_cvv2_answers_n7_and_cvv_never_comes_back(issuer: Issuer, mf: MessageFactory) -> None:
    assert answer(issuer, mf.auth("4012888888881881", **{"120": "999"}))["39"] == "N7"
    ok = answer(issuer, mf.auth("4012888888881881", **{"120": "123"}))
    assert ok["39"] == "00"
    assert "120" not in ok
    # No CVV2 at all is not a mismatch (stored-credential payments carry none).
    assert answer(issuer, mf.auth("4012888888881881"))["39"] == "00"


def test_checks_run_in_the_documented_order(mf: MessageFactory) -> None:
    rules = parse_rules(
        {
            "cards": [
                {"pan": "4000000000000002", "response": "59", "cvv": "123", "balance": 1},
                {"pan": "4111111111111111", "response": "05", "balance": 1},
            ]
        }
    )
    issuer = Issuer(rules, seed=1, clock=lambda: NOW)
    fraud = "4000000000000002"
    assert answer(issuer, mf.auth(fraud, 5, expiry="2001", **{"120": "999"}))["39"] == "54"  # expiry first
    assert answer(issuer, mf.auth(fraud, 5, **{"120": "999"}))["39"] == "N7"  # then CVV2
    assert answer(issuer, mf.auth(fraud, 5))["39"] == "59"  # then the card's own answer
    assert answer(issuer, mf.auth("4111111111111111", 5))["39"] == "05"  # before the balance
    assert answer(issuer, mf.auth("6011000990139424", 5, expiry="2001"))["39"] == "14"  # unknown first of all


def test_expiry_override_of_a_card_is_checked_instead_of_de14(mf: MessageFactory) -> None:
    rules = parse_rules({"cards": [{"pan": "4111111111111111", "expiry": "2501"}]})
    issuer = Issuer(rules, seed=1, clock=lambda: NOW)
    assert answer(issuer, mf.auth("4111111111111111", expiry="3012"))["39"] == "54"


def test_responses_echo_the_request_except_private_and_mac_fields(issuer: Issuer, mf: MessageFactory) -> None:
    req = mf.auth(**{"52": "0123456789ABCDEF", "120": "123", "121": "05", "124": "CF", "64": "F" * 16})
    resp = answer(issuer, req)
    for k in ("2", "3", "4", "7", "11", "12", "13", "14", "18", "22", "25", "32", "37", "41", "42", "43", "49"):
        assert resp[k] == req[k]
    for k in ("52", "64", "120", "121", "122", "123", "124", "128"):
        assert k not in resp
    assert req["t"] == "0100" and "120" in req  # the request is left alone


def test_alnum_auth_codes_are_six_uppercase_characters(mf: MessageFactory) -> None:
    rules = parse_rules({"issuer": {"auth_code": "alnum"}})
    issuer = Issuer(rules, seed=3, clock=lambda: NOW)
    codes = {answer(issuer, mf.auth())["38"] for _ in range(20)}
    assert all(len(c) == 6 and c.isalnum() and c == c.upper() for c in codes)
    assert any(not c.isdigit() for c in codes)


def test_strict_mode_requires_every_documented_field(mf: MessageFactory) -> None:
    issuer = Issuer(parse_rules({"issuer": {"strict": True}}), seed=1, clock=lambda: NOW)
    req = mf.auth()
    assert answer(issuer, req)["39"] == "00"
    del req["43"]
    req["11"] = mf.next_stan()
    assert answer(issuer, req)["39"] == "30"
    assert answer(make_issuer(), req)["39"] == "00"  # lenient by default


def test_requests_missing_what_the_issuer_needs_answer_30(issuer: Issuer, mf: MessageFactory) -> None:
    req = mf.auth()
    del req["4"]
    assert answer(issuer, req)["39"] == "30"
    assert answer(issuer, mf.auth(**{"4": "12AB"}))["39"] == "30"
    assert answer(issuer, {"t": "0800", "11": "000001"})["39"] == "30"


def test_unsupported_requests_answer_12_and_responses_get_nothing(issuer: Issuer, mf: MessageFactory) -> None:
    assert answer(issuer, mf.auth(proc="310000"))["39"] == "12"  # balance inquiry
    assert answer(issuer, mf.auth(mti="0200", proc="010000"))["39"] == "12"  # cash
    assert answer(issuer, {"t": "0600", "11": "000001"}) == {"t": "0610", "11": "000001", "39": "12"}
    assert issuer.handle({"t": "0110", "11": "000001", "39": "00"}) is None
    assert issuer.handle({"t": "ABCD"}) is None


@pytest.mark.parametrize(("code", "rc"), [("001", "00"), ("002", "00"), ("301", "00"), ("999", "12")])
def test_network_management_codes(issuer: Issuer, mf: MessageFactory, code: str, rc: str) -> None:
    req = mf.network(code)
    resp = answer(issuer, req)
    assert resp == {**req, "t": "0810", "39": rc}


# -- repeats and the books, at the issuer level ----------------------------
def test_a_resent_authorization_gets_the_same_answer_and_one_hold(issuer: Issuer, mf: MessageFactory) -> None:
    req = mf.auth(CARD, 700)
    first = answer(issuer, req)
    again = answer(issuer, {**req, "t": "0101"})
    assert again["39"] == first["39"] == "00"
    assert again["38"] == first["38"]
    acct = issuer.ledger.account(req["2"])
    assert acct.held == 700
    assert issuer.repeats == 1


def test_a_resent_decline_is_the_same_decline(issuer: Issuer, mf: MessageFactory) -> None:
    req = mf.auth("5105105105105100", 20_000)
    assert answer(issuer, req)["39"] == "51"
    assert answer(issuer, req)["39"] == "51"


def test_a_refund_or_credit_needs_only_a_card_of_ours(issuer: Issuer, mf: MessageFactory) -> None:
    # Even a card that declines authorizations takes money back.
    assert answer(issuer, mf.refund("4276990011343663", 100))["39"] == "00"
    assert answer(issuer, mf.credit("4000000000000002", 100))["39"] == "00"
    assert answer(issuer, mf.refund("6011000990139424", 100))["39"] == "14"
    assert issuer.ledger.account("4276990011343663").balance == 100_000_000 + 100


def test_capture_finds_its_original_by_rrn_and_auth_code_without_de90(issuer: Issuer, mf: MessageFactory) -> None:
    auth = mf.auth(CARD, 900)
    code = answer(issuer, auth)["38"]
    cap = mf.follow_up("0220", auth, 900, use_de90=False)
    cap["38"] = code
    assert answer(issuer, cap)["39"] == "00"
    assert issuer.ledger.account(auth["2"]).captured == 900


def test_reversal_of_a_declined_original_is_accepted_without_effect(issuer: Issuer, mf: MessageFactory) -> None:
    auth = mf.auth("4276990011343663", 500)
    assert answer(issuer, auth)["39"] == "05"
    assert answer(issuer, mf.reversal(auth))["39"] == "00"
    assert issuer.ledger.account("4276990011343663").balance == 100_000_000


def test_old_records_are_forgotten_and_their_holds_expire(mf: MessageFactory) -> None:
    issuer = make_issuer(max_records=3)
    first = mf.auth(CARD, 100)
    answer(issuer, first)
    for _ in range(3):
        answer(issuer, mf.auth(CARD, 100))
    acct = issuer.ledger.account(first["2"])
    assert acct.held == 300  # the first hold expired with its record
    assert issuer.ledger.dropped == 1
    assert answer(issuer, mf.reversal(first))["39"] == "25"
    snap = issuer.ledger.snapshot()
    assert snap["records_dropped"] == 2 and len(snap["cards"][0]["holds"]) == 2
