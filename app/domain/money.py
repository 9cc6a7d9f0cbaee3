"""Exact money: Decimal amounts with at most two decimals, ISO 4217 currencies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from msgspec import Meta

CENT = Decimal("0.01")

# An amount as it travels: an exact JSON number (see app/events/codec.py), never negative.
Money = Annotated[Decimal, Meta(extra_json_schema={"minimum": 0})]
MAX_PRICE = Decimal("99999999.99")

# Active ISO 4217 codes (the standard's List One), minus funds
# and precious metals, which are not currencies anyone pays an order in.
CURRENCIES = frozenset(
    " ".join(
        (
            "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL",
            "BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP",
            "ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR",
            "IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL",
            "LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR",
            "NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD",
            "SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX",
            "USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG",
        )
    ).split()
)


def has_cents_at_most(amount: Decimal) -> bool:
    """True when `amount` needs no more than two decimals (49.9, 49.90 and 49 do)."""
    return amount == amount.quantize(CENT) if amount.is_finite() else False


def line_total(price: Decimal, quantity: int) -> Decimal:
    return (price * quantity).quantize(CENT)
