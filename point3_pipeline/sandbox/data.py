"""Deterministic demo data: a culture merchant's payments, from a seed.

One `random.Random` drives everything, in a fixed order, so the same seed and the same
start day give the same history. Days have a weekly rhythm, hours a daily one; prices are
typical won amounts; codes follow the product (performances b/f, transport c/g, the rest
a/d). About 1% of records copy the shape of point3's own examples (vat 0, taxFreeAmount 0,
no codes or timestamps), because the real API returns such records.

The history also carries every shape the tax split must handle (docs/korean-vat.md): taxable
sales (VAT = 1/11, rounded), mixed ones (VAT-exempt goods with a small taxable fee), fully
exempt ones (vat 0, as point3's creation rule would refuse but its history can hold),
VAT above 1/11 (a fee's VAT on a cheaper ticket), museum admissions sold VAT-free by a
gallery that declares all its sales taxable (a declared-vs-figures conflict), a rare unknown
payment method, six businesses (clientNickname) under one key, and cancellations of
month-end payments that land in the next month (and, at a quarter's end, the next quarter).
These shapes draw from their own random stream, so the records the first one makes, and
their order, stay as they were.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import accumulate

from point3_pipeline.models import kst_day_start

SIGNATURE_ALPHABET = string.ascii_letters + string.digits
SIGNATURE_LENGTH = 32
# Random bytes mapped onto the alphabet: far faster than choices() for 200k signatures.
_SIGNATURE_TABLE = bytes(ord(SIGNATURE_ALPHABET[i % len(SIGNATURE_ALPHABET)]) for i in range(256))
CLIENT_IDENTIFICATION = "point3sandbox01"
PAYMENT_METHODS = ("CARD", "BANK_TRANSFER", "EASY_PAY")
PAYMENT_METHOD_CUM_WEIGHTS = (6, 8, 10)

# Fri-Sun sell more culture; Monday least.
WEEKDAY_FACTOR = (0.85, 0.9, 0.95, 1.0, 1.15, 1.25, 1.1)
HOUR_WEIGHTS = (2, 1, 1, 0.5, 0.5, 0.5, 1, 2, 4, 5, 6, 7, 9, 8, 7, 7, 7, 8, 9, 10, 10, 9, 6, 4)
MIDNIGHT_SHARE = 0.2  # share of days with one payment at exactly 00:00:00 (window-edge cases)
DOCS_SHAPED_SHARE = 0.01
REUSED_ORDER_ID_SHARE = 0.03
CANCEL_SHARE = 0.04


@dataclass(frozen=True)
class Category:
    codes: tuple[str, str]  # (income-deduction code, expense-proof code)
    taxable: bool  # False: VAT-exempt goods, only a small fee carries VAT
    weight: int
    max_quantity: int
    merchants: tuple[str, ...]
    products: tuple[str, ...]
    prices: tuple[int, ...]


CATEGORIES = (
    Category(("b", "f"), True, 30, 4,
             ("아트홀 푸른별", "바이올렛 캔디 앤 젤리"),
             ("뮤지컬 〈레미제라블〉 R석", "뮤지컬 〈오페라의 유령〉 S석", "연극 〈라이어〉 일반석",
              "클래식 공연 〈신년 음악회〉 A석", "국악 공연 〈판소리 다섯 바탕〉", "재즈 페스티벌 1일권",
              "발레 〈호두까기 인형〉 R석", "인디 밴드 콘서트 스탠딩"),
             (33000, 44000, 55000, 66000, 88000, 99000, 110000, 132000, 150000, 170000)),
    Category(("a", "d"), False, 25, 1,
             ("책방 달빛서가", "문화공간 온새미로"),
             ("도서 『채식주의자』", "도서 『불편한 편의점』", "도서 『아몬드』", "전자책 『소년이 온다』",
              "어린이 그림책 세트", "월간 잡지 정기구독 (1년)", "만화 전집 1~10권"),
             (9800, 12000, 13500, 14400, 15000, 16800, 18000, 22500, 45000, 120000)),
    Category(("a", "d"), True, 25, 4,
             ("갤러리 한빛", "문화공간 온새미로"),
             ("전시 관람권 〈빛의 벙커〉", "국립현대미술관 특별전 관람권", "사진전 〈비비안 마이어〉 성인",
              "박물관 연간회원권", "미디어아트 전시 얼리버드", "영화 관람권 2D 일반"),
             (8000, 12000, 14000, 15000, 18000, 20000, 25000, 30000, 50000)),
    Category(("c", "g"), False, 20, 2,
             ("한빛 트래블",),
             ("시외버스 승차권 서울→강릉", "KTX 승차권 서울→부산", "지하철 정기권 (60회)",
              "고속버스 승차권 서울→전주", "공항철도 직통열차 승차권"),
             (1550, 9900, 11000, 13800, 23000, 32000, 55000, 59800)),
)
EXEMPT_FEES = (1000, 2000, 3000)  # the taxable booking/delivery fee inside a VAT-exempt sale
FEE_FREE_SHARE = 0.25  # VAT-exempt goods sold with no fee: fully exempt (vat 0)
MUSEUM_WORDS = ("박물관", "국립현대미술관")  # admissions exempt from VAT
MUSEUM_EXEMPT_SHARE = 0.5
UNKNOWN_METHOD = "VIRTUAL_ACCOUNT"  # a code the pipeline has no label for
UNKNOWN_METHOD_SHARE = 0.003
MONTH_END_DAYS = 2  # payments on a month's last days ...
MONTH_END_CANCEL_SHARE = 0.15  # ... of which this share is cancelled
MONTH_END_CANCEL_DELAYS = (2 * 86400, 5 * 86400)  # this long after: in the next month


KST_OFFSET = 9 * 3600  # Asia/Seoul has been UTC+9 without DST since 1988


@cache
def _day_prefix(day_number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_number)).strftime("%Y%m%d")


def kst_stamp(epoch: int) -> str:
    """format_timestamp for epoch seconds, ~5x faster: history generation makes 400k of them."""
    day_number, second = divmod(epoch + KST_OFFSET, 86400)
    hour, rest = divmod(second, 3600)
    return f"{_day_prefix(day_number)}{hour:02d}{rest // 60:02d}{rest % 60:02d}"


@dataclass(frozen=True)
class HistoricPayment:
    record: dict  # the lookup record without isCanceled
    accepted_at: int  # epoch seconds
    cancel_requested_at: int | None  # epoch seconds; None = never cancelled


class PaymentFactory:
    """Makes plausible payment records; keeps users, order ids and signatures consistent."""

    def __init__(self, rng: random.Random, expected_payments: int, *,
                 categories: tuple[Category, ...] = CATEGORIES, cancel_share: float = CANCEL_SHARE,
                 month_end_cancel_share: float = MONTH_END_CANCEL_SHARE):
        self.rng = rng
        self.categories = categories
        self._category_cum_weights = tuple(accumulate(c.weight for c in categories))
        self.cancel_share = cancel_share
        self.month_end_cancel_share = month_end_cancel_share
        # Seeded from the main stream's state without drawing from it (see the module's note).
        self.shape_rng = random.Random(repr(rng.getstate()))
        self._signatures: set[str] = set()
        self._user_ids: dict[str, str] = {}  # clientGeneratedUserId -> point3 userId
        # Several payments per user, a few heavy users: ~4 payments per user on average.
        self._users = [self._new_user() for _ in range(max(10, expected_payments // 4))]
        self._recent_order_ids: deque[str] = deque(maxlen=50)
        self._order_seq = 0

    def _new_user(self) -> str:
        client_user_id = "U" + "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=15))
        self.user_id_for(client_user_id)
        return client_user_id

    def user_id_for(self, client_user_id: str) -> str:
        """point3's own user id for a merchant user id; new users get the next number."""
        user_id = self._user_ids.get(client_user_id)
        if user_id is None:
            user_id = self._user_ids[client_user_id] = str(len(self._user_ids) + 1)
        return user_id

    def signature(self) -> str:
        while True:
            signature = self.rng.randbytes(SIGNATURE_LENGTH).translate(_SIGNATURE_TABLE).decode()
            if signature not in self._signatures:
                self._signatures.add(signature)
                return signature

    def claim_signature(self, signature: str) -> bool:
        """Reserve a caller-chosen signature; False if it is taken."""
        if signature in self._signatures:
            return False
        self._signatures.add(signature)
        return True

    def payment_method(self) -> str:
        return self.rng.choices(PAYMENT_METHODS, cum_weights=PAYMENT_METHOD_CUM_WEIGHTS)[0]

    def _order_id(self, accepted_at: int) -> str:
        roll = self.rng.random()
        if roll < 0.005:
            return "orderIdRandom"  # the docs' own example value
        if roll < REUSED_ORDER_ID_SHARE and self._recent_order_ids:
            return self.rng.choice(self._recent_order_ids)  # a retried order, not unique
        self._order_seq += 1
        order_id = f"ORD{kst_stamp(accepted_at)[:8]}-{self._order_seq:06d}"
        self._recent_order_ids.append(order_id)
        return order_id

    def record(self, accepted_at: int, docs_shaped: bool = False) -> dict:
        """A record accepted at `accepted_at` (epoch seconds), without isCanceled."""
        rng = self.rng
        category = rng.choices(self.categories, cum_weights=self._category_cum_weights)[0]
        product = rng.choice(category.products)
        quantity = 1
        if category.max_quantity > 1 and rng.random() < 0.2:
            quantity = rng.randint(2, category.max_quantity)
            product = f"{product} {quantity}매"
        total = rng.choice(category.prices) * quantity
        vat = round(total / 11) if category.taxable else round(rng.choice(EXEMPT_FEES) / 11)
        code = category.codes[0] if rng.random() < 0.8 else category.codes[1]
        client_user_id = self._users[int(len(self._users) * rng.random() ** 2)]
        requested_at = accepted_at - rng.randint(5, 90)
        record = {
            "signature": self.signature(),
            "userId": self._user_ids[client_user_id],
            "clientNickname": rng.choice(category.merchants),
            "purchasingProductName": product,
            "totalCharge": total,
            "taxFreeAmount": total - vat,
            "vat": vat,
            "orderIdFromClient": self._order_id(accepted_at),
            "clientIdentification": CLIENT_IDENTIFICATION,
            "clientGeneratedUserId": client_user_id,
            "paymentMethodType": self.payment_method(),
            "cultureExpenseType": code,
            "timeStampOnRequest": kst_stamp(requested_at),
            "timeStampOnAccept": kst_stamp(accepted_at),
        }
        if docs_shaped:
            record["taxFreeAmount"] = record["vat"] = 0
            for name in ("paymentMethodType", "cultureExpenseType", "timeStampOnRequest", "timeStampOnAccept"):
                del record[name]
        return record

    def cancel_request_delay(self) -> int | None:
        """Seconds after acceptance the merchant asks to cancel, or None (most payments)."""
        rng = self.rng
        if rng.random() >= self.cancel_share:
            return None
        roll = rng.random()
        if roll < 0.5:
            return rng.randint(5 * 60, 60 * 60)  # minutes later: wrong item, changed mind
        if roll < 0.85:
            return rng.randint(86400, 6 * 86400)  # days later
        return rng.randint(7 * 86400, 28 * 86400)  # weeks later


def history_days(today: dt.date, days: int, future_days: int) -> list[dt.date]:
    """`days` days ending with today, then `future_days` after it."""
    first = today - dt.timedelta(days=days - 1)
    return [first + dt.timedelta(days=i) for i in range(days + future_days)]


def generate_history(factory: PaymentFactory, days: list[dt.date], per_day: int) -> Iterator[HistoricPayment]:
    rng = factory.rng
    for day in days:
        count = round(per_day * WEEKDAY_FACTOR[day.weekday()] * rng.uniform(0.85, 1.15))
        midnight = kst_day_start(day)
        base = int(midnight.timestamp())
        hours = rng.choices(range(24), HOUR_WEIGHTS, k=count)
        seconds = sorted(hour * 3600 + rng.randrange(3600) for hour in hours)
        if seconds and rng.random() < MIDNIGHT_SHARE:
            seconds[0] = 0  # exactly 00:00:00: both adjacent day windows may claim it
        month_end = (day + dt.timedelta(days=MONTH_END_DAYS)).month != day.month
        for offset in seconds:
            accepted = base + offset
            record = factory.record(accepted, rng.random() < DOCS_SHAPED_SHARE)
            delay = factory.cancel_request_delay()
            tax_shapes(factory.shape_rng, record)
            if month_end and delay is None and factory.shape_rng.random() < factory.month_end_cancel_share:
                delay = factory.shape_rng.randint(*MONTH_END_CANCEL_DELAYS)
            yield HistoricPayment(record, accepted, None if delay is None else accepted + delay)


def tax_shapes(rng: random.Random, record: dict) -> None:
    """Turn some history records into the tax shapes that are not made by record() (which also
    makes new payments, where point3 refuses vat 0): fully exempt sales, VAT-free museum
    admissions, an unknown payment method."""
    if "timeStampOnAccept" not in record:
        return  # docs-shaped: keep it as point3's examples are
    exempt_goods_with_fee = record["totalCharge"] - 11 * record["vat"] > 5
    museum = any(word in record["purchasingProductName"] for word in MUSEUM_WORDS)
    if (exempt_goods_with_fee and rng.random() < FEE_FREE_SHARE) or (museum and rng.random() < MUSEUM_EXEMPT_SHARE):
        record.update(vat=0, taxFreeAmount=record["totalCharge"])
    if rng.random() < UNKNOWN_METHOD_SHARE:
        record["paymentMethodType"] = UNKNOWN_METHOD
