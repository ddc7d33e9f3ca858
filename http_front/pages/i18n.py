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
    "optional": "optional",
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
    # payment links' pre-payment page (http_front.links.page)
    "link_continue": "Continue to payment",
    "link_amount": "Amount to pay",
    "amount_hint": "From {low} to {high}",
    "link_email": "E-mail",
    "link_full_name": "Full name",
    "link_phone": "Phone number",
    "link_address": "Delivery address",
    "link_required": "Please fill in this field.",
    "link_invalid": "This value is not in the expected format.",
    "link_too_long": "This value is too long.",
    "link_amount_invalid": "Enter an amount, for example 12.50.",
    "link_amount_range": "Enter an amount within the range shown.",
    "link_disabled": "This payment link is not active",
    "link_disabled_text": "The shop has switched this link off.",
    "link_scheduled": "This payment link is not open yet",
    "link_scheduled_text": "Please come back later.",
    "link_expired": "This payment link has expired",
    "link_expired_text": "The time to pay through this link has run out.",
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
    "optional": "необязательно",
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
    "link_continue": "Перейти к оплате",
    "link_amount": "Сумма к оплате",
    "amount_hint": "От {low} до {high}",
    "link_email": "Эл. почта",
    "link_full_name": "Фамилия и имя",
    "link_phone": "Телефон",
    "link_address": "Адрес доставки",
    "link_required": "Заполните это поле.",
    "link_invalid": "Значение не в нужном формате.",
    "link_too_long": "Слишком длинное значение.",
    "link_amount_invalid": "Введите сумму, например 12.50.",
    "link_amount_range": "Введите сумму в указанных пределах.",
    "link_disabled": "Ссылка на оплату не активна",
    "link_disabled_text": "Магазин отключил эту ссылку.",
    "link_scheduled": "Ссылка на оплату ещё не действует",
    "link_scheduled_text": "Пожалуйста, зайдите позже.",
    "link_expired": "Срок действия ссылки на оплату истёк",
    "link_expired_text": "Время оплаты по этой ссылке вышло.",
}

LANGUAGES: dict[str, dict[str, str]] = {"en": _EN, "ru": _RU}


def text(language: str) -> dict[str, str]:
    """The words of ``language`` (English for one not offered)."""
    return LANGUAGES.get(language, _EN)
