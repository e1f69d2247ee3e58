"""What each merchant of a sandbox is: its key, history, businesses, cancellations and
settlement terms.

Merchant 1 is the sandbox of one merchant exactly (the seed, key, volume and terms given), so
`--merchants 1` (the default) serves what it always did. Merchant n > 1 is derived from the
seed and n alone: its own seed, a volume between half and one and a half times `per_day`, a
mix of the four kinds of culture business (some left out), its businesses' clientNicknames
named for a branch, its own cancellation shares and settlement contract, and a key derived
from the first key. The same seed gives the same merchants.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
from dataclasses import dataclass

from point3_pipeline.businesses import registration_check_digit
from point3_pipeline.sandbox.config import SandboxConfig
from point3_pipeline.sandbox.data import CANCEL_SHARE, CATEGORIES, CLIENT_IDENTIFICATION, MONTH_END_CANCEL_SHARE, Category
from point3_pipeline.sandbox.settlement import SettlementTerms

MOST_MERCHANTS = 1000
# Branch names make every derived merchant's clientNicknames its own.
BRANCHES = ("강남점", "홍대점", "해운대점", "전주점", "대전점", "광주점", "수원점", "일산점", "분당점", "인천점",
            "춘천점", "제주점", "청주점", "울산점", "창원점", "포항점", "여수점", "목포점", "안동점", "경주점")


@dataclass(frozen=True)
class Declaration:
    """How the demo declares the business behind a clientNickname (docs/demo-businesses.toml)."""

    id: str
    registration_number: str
    taxpayer_type: str
    sales: str
    client_identification: str | None = None


# The first merchant's businesses, as docs/demo-businesses.toml declares them (a test keeps both equal).
DECLARATIONS = {
    "아트홀 푸른별": Declaration("arthall", "1018112341", "일반과세자", "all_taxable", CLIENT_IDENTIFICATION),
    "바이올렛 캔디 앤 젤리": Declaration("violet", "1208123456", "일반과세자", "all_taxable"),
    "책방 달빛서가": Declaration("dalbit", "2140956784", "일반과세자", "by_vat"),
    "문화공간 온새미로": Declaration("onsaemiro", "1102345676", "일반과세자", "by_vat"),
    "갤러리 한빛": Declaration("hanbit-gallery", "2112512341", "간이과세자", "all_taxable"),
    "한빛 트래블": Declaration("hanbit-travel", "1048124680", "일반과세자", "by_vat"),
}


@dataclass(frozen=True)
class Business:
    nickname: str
    declaration: Declaration


@dataclass(frozen=True)
class MerchantProfile:
    """What makes one sandbox merchant's history and contract."""

    number: int  # 1..N
    seed: int
    key: str
    per_day: int
    categories: tuple[Category, ...]
    cancel_share: float
    month_end_cancel_share: float
    terms: SettlementTerms
    businesses: tuple[Business, ...]

    @property
    def id(self) -> str:
        """Its id in the merchants file written for it."""
        return f"merchant-{self.number:02d}"

    @property
    def name(self) -> str:
        return "포인트쓰리 샌드박스" if self.number == 1 else f"포인트쓰리 샌드박스 {_branch(self.number)}"


def _branch(number: int) -> str:
    return BRANCHES[number - 2] if number - 2 < len(BRANCHES) else f"{number}호점"


def merchant_profiles(config: SandboxConfig, count: int) -> list[MerchantProfile]:
    if type(count) is not int or not 1 <= count <= MOST_MERCHANTS:
        raise ValueError(f"merchants must be a whole number from 1 to {MOST_MERCHANTS}, not {count!r}")
    first = MerchantProfile(
        1, config.seed, config.key, config.per_day, CATEGORIES, CANCEL_SHARE, MONTH_END_CANCEL_SHARE,
        SettlementTerms(), tuple(Business(n, d) for n, d in DECLARATIONS.items()),
    )
    return [first] + [_derived(config, number) for number in range(2, count + 1)]


def _derived(config: SandboxConfig, number: int) -> MerchantProfile:
    rng = random.Random(f"point3-sandbox-merchant:{config.seed}:{number}")
    branch = _branch(number)
    weights = [c.weight * rng.choice((0, 1, 2, 3)) for c in CATEGORIES]
    if not any(weights):
        weights[0] = CATEGORIES[0].weight
    categories = tuple(
        dataclasses.replace(c, weight=w, merchants=tuple(f"{name} {branch}" for name in c.merchants))
        for c, w in zip(CATEGORIES, weights)
    )
    sold = {name for c, w in zip(CATEGORIES, weights) if w for name in c.merchants}
    businesses = tuple(
        Business(f"{name} {branch}", dataclasses.replace(
            declaration, id=f"{declaration.id}-{number}", registration_number=_registration_number(rng)))
        for name, declaration in DECLARATIONS.items() if name in sold
    )
    terms = SettlementTerms(
        fee_ppm=rng.choice((0, 25_000, 30_000, 33_000)), fee_vat=rng.random() < 0.5,
        credit_delay_days=rng.choice((0, 0, 1, 2)), payout=rng.choice(("weekly", "daily")),
        payout_delay_days=rng.choice((1, 2)),
    )
    key = "sk_sandbox_" + hmac.new(config.key.encode(), f"merchant {number}".encode(), hashlib.sha256).hexdigest()[:32]
    return MerchantProfile(
        number, rng.getrandbits(32), key, max(1, round(config.per_day * rng.choice((0.5, 0.75, 1.0, 1.25, 1.5)))),
        categories, rng.choice((0.01, 0.04, 0.08, 0.12)), rng.choice((0.0, 0.15, 0.3)), terms, businesses,
    )


def _registration_number(rng: random.Random) -> str:
    first_nine = f"{rng.randrange(101, 900):03d}{rng.randrange(1, 90):02d}{rng.randrange(0, 10_000):04d}"
    return first_nine + str(registration_check_digit(first_nine))
