"""The payment page's words, per language (``options.language`` of ``/orders/create``).

Every language has every key (a test checks it); schemas/rest/create.json's
``language`` enum lists the same languages.

>>> text("ru")["pay"], sorted(LANGUAGES)
('Оплатить', ['en', 'ru'])
"""

from __future__ import annotations

__all__ = ["LANGUAGES", "text"]

_EN = {
    "title": "Payment",
    "merchant": "Merchant",
    "amount": "Amount",
    "description": "Description",
    "number": "Card number",
    "exp_month": "Month (MM)",
    "exp_year": "Year (YY)",
    "expiry": "Expiry date",
    "cvc": "Security code (CVC)",
    "holder": "Name on card",
    "pay": "Pay",
    "secure_note": "Card data goes to the payment gateway only, never to the shop.",
    "number_required": "Enter the card number.",
    "number_invalid": "This card number is not valid.",
    "exp_invalid": "Enter the month (01-12) and the year.",
    "exp_past": "This card has expired.",
    "cvc_invalid": "Enter the 3 or 4 digits of the security code.",
    "holder_invalid": "Enter the name as printed on the card (Latin letters).",
    "form_stale": "This form is out of date. Please check the details and pay again.",
    "fix_errors": "Please correct the fields marked below.",
    "paid": "Payment successful",
    "paid_text": "Thank you: the payment was accepted.",
    "declined": "Payment declined",
    "declined_text": "The payment was not accepted.",
    "reason": "Reason",
    "expired": "This payment page has expired",
    "expired_text": "The time to pay has run out. Please go back to the shop and start again.",
    "pending": "Payment in progress",
    "pending_text": "The payment is being processed.",
    "not_found": "Payment page not found",
    "not_found_text": "Check the link you were given.",
    "unavailable": "This payment cannot be made now",
    "back": "Return to the shop",
    "continue_3ds": "Continue to your bank's verification",
    "verify_3ds": "Your bank asks you to confirm this payment.",
    "save_card": "Save this card for next time",
}

_RU = {
    "title": "Оплата",
    "merchant": "Магазин",
    "amount": "Сумма",
    "description": "Описание",
    "number": "Номер карты",
    "exp_month": "Месяц (ММ)",  # noqa: RUF001 (Cyrillic, as Russian writes it)
    "exp_year": "Год (ГГ)",
    "expiry": "Срок действия",
    "cvc": "Код безопасности (CVC)",
    "holder": "Имя на карте",
    "pay": "Оплатить",
    "secure_note": "Данные карты получает только платёжный шлюз, не магазин.",
    "number_required": "Введите номер карты.",
    "number_invalid": "Неверный номер карты.",
    "exp_invalid": "Введите месяц (01-12) и год.",
    "exp_past": "Срок действия карты истёк.",
    "cvc_invalid": "Введите 3 или 4 цифры кода безопасности.",
    "holder_invalid": "Введите имя латиницей, как на карте.",
    "form_stale": "Форма устарела. Проверьте данные и оплатите снова.",
    "fix_errors": "Исправьте отмеченные поля.",
    "paid": "Оплата прошла",
    "paid_text": "Спасибо: платёж принят.",
    "declined": "Платёж отклонён",
    "declined_text": "Платёж не принят.",
    "reason": "Причина",
    "expired": "Срок действия страницы оплаты истёк",
    "expired_text": "Время на оплату вышло. Вернитесь в магазин и начните заново.",
    "pending": "Платёж обрабатывается",
    "pending_text": "Платёж в обработке.",
    "not_found": "Страница оплаты не найдена",
    "not_found_text": "Проверьте ссылку.",
    "unavailable": "Этот платёж сейчас невозможен",
    "back": "Вернуться в магазин",
    "continue_3ds": "Перейти к подтверждению в банке",
    "verify_3ds": "Банк просит подтвердить этот платёж.",
    "save_card": "Сохранить карту для следующих покупок",
}

LANGUAGES: dict[str, dict[str, str]] = {"en": _EN, "ru": _RU}


def text(language: str) -> dict[str, str]:
    """The words of ``language`` (English for one not offered)."""
    return LANGUAGES.get(language, _EN)
