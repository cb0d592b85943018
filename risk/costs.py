"""What one share costs to trade in a symbol: the spread crossed, the slippage beyond the quote,
the broker's commission and the regulatory fees charged on sales.

One model per symbol (settings, then the symbol's `SymbolOverride` values), used by sizing (the
round trip a stop-out costs), by the fill model of paper trading and both backtest modes
(`trading.core.fills`: market and stop fills, the paper quote, each fill's fees), and by the drift
ledger (`analytics.cost_model`). Money is Decimal; every fee is rounded up to the cent, as
brokers pass them on.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

CENT = Decimal("0.01")
MILLION = Decimal(1_000_000)
TEN_K = Decimal(10_000)
_ZERO = Decimal("0")
BUY_SIDES = ("buy", "buy_to_cover")


def _up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_CEILING)


@dataclass(frozen=True, slots=True)
class CostModel:
    """Per-share and per-order costs of one symbol (all in USD).

    `spread_usd` is the full quoted spread: a market order pays half of it on each side.
    `slippage_usd` is the extra adverse move of a market (or triggered stop) order beyond the
    quote. Regulatory fees apply to sales only: the SEC Section 31 fee on the sale's value, the
    FINRA trading activity fee per share sold (capped per order). `spread_bps` and
    `slippage_bps` are the same costs as a fraction of the price (PAPER_SPREAD_BPS and
    PAPER_SLIPPAGE_BPS feed them); they add to the USD parts. The all-zero model (the
    dataclass default) is the frictionless one older tests use.
    """

    spread_usd: Decimal = _ZERO
    slippage_usd: Decimal = _ZERO
    commission_per_share_usd: Decimal = _ZERO
    commission_per_order_usd: Decimal = _ZERO
    sec_fee_per_million: Decimal = _ZERO
    taf_per_share_usd: Decimal = _ZERO
    taf_max_usd: Decimal = _ZERO
    tick_usd: Decimal = CENT
    spread_bps: Decimal = _ZERO
    slippage_bps: Decimal = _ZERO

    def with_(self, **changes) -> CostModel:
        return replace(self, **{k: Decimal(str(v)) for k, v in changes.items() if v is not None})

    # --- prices ------------------------------------------------------------------------------
    @property
    def adverse_usd(self) -> Decimal:
        """How much worse than the mid a market order fills: half the spread plus slippage
        (the USD parts; `adverse_at` adds the parts in bps)."""
        return self.spread_usd / 2 + self.slippage_usd

    def adverse_at(self, price: Decimal) -> Decimal:
        """Half the spread plus the slippage at `price`, USD and bps parts together."""
        bps = self.spread_bps / 2 + self.slippage_bps
        return self.adverse_usd + (Decimal(price) * bps / TEN_K if bps else _ZERO)

    def spread_at(self, price: Decimal) -> Decimal:
        """The full quoted spread at `price` (the paper quote's ask - bid)."""
        return self.spread_usd + Decimal(price) * self.spread_bps / TEN_K

    def market_fill(self, side: str, mid: Decimal) -> Decimal:
        """The expected fill of a market order at `mid`, rounded to the tick against the
        trader (buys up, sells down). The paper broker and backtests fill market orders and
        triggered stops at exactly this price of the bar's open (or the stop)."""
        mid = Decimal(mid)
        if side in BUY_SIDES:
            return _to_tick(mid + self.adverse_at(mid), self.tick_usd, ROUND_CEILING)
        return _to_tick(mid - self.adverse_at(mid), self.tick_usd, ROUND_FLOOR)

    # --- fees --------------------------------------------------------------------------------
    def commission(self, qty: int) -> Decimal:
        if qty <= 0:
            return _ZERO
        return _up(self.commission_per_order_usd + self.commission_per_share_usd * qty)

    def regulatory_fees(self, side: str, qty: int, price: Decimal) -> Decimal:
        """SEC fee + FINRA TAF of a sale (0 for a purchase), each rounded up to the cent."""
        if side in BUY_SIDES or qty <= 0:
            return _ZERO
        sec = _up(Decimal(price) * qty * self.sec_fee_per_million / MILLION)
        taf = self.taf_per_share_usd * qty
        if self.taf_max_usd > 0:
            taf = min(taf, self.taf_max_usd)
        return sec + _up(taf)

    def fees(self, side: str, qty: int, price: Decimal) -> Decimal:
        """Everything charged on one fill besides the price: commission + regulatory fees."""
        return self.commission(qty) + self.regulatory_fees(side, qty, price)

    def fill_fee(self, side: str, qty: int, price: Decimal, *, first_fill: bool) -> Decimal:
        """The fees of one (possibly partial) fill of an order, as the paper broker and the
        backtests book them: the per-share commission, the per-order commission on the
        order's first fill only, and the regulatory fees of a sale (the TAF cap applies per
        fill), each rounded up to the cent."""
        if qty <= 0:
            return _ZERO
        commission = self.commission_per_share_usd * qty
        if first_fill:
            commission += self.commission_per_order_usd
        return _up(commission) + self.regulatory_fees(side, qty, price)

    # --- round trips -------------------------------------------------------------------------
    def round_trip_fees(self, qty: int, entry: Decimal, exit_price: Decimal) -> Decimal:
        """Fees of buying `qty` at `entry` and selling them at `exit_price`."""
        return self.fees("buy", qty, entry) + self.fees("sell", qty, exit_price)

    def fees_per_share(self, price: Decimal) -> Decimal:
        """Per-share fees of a round trip exiting near `price` (commission both sides, the
        sale's SEC fee and TAF), before rounding and per-order charges."""
        sec = Decimal(price) * self.sec_fee_per_million / MILLION
        return 2 * self.commission_per_share_usd + sec + self.taf_per_share_usd

    def round_trip_per_share(self, price: Decimal) -> Decimal:
        """The cost of a market-in, market-out round trip of one share near `price`: the
        spread, slippage on both sides and the per-share fees; the yardstick a target must
        clear."""
        return 2 * self.adverse_at(price) + self.fees_per_share(price)

    @property
    def frictionless(self) -> bool:
        """No spread, slippage or fee of any kind (the tick may be anything)."""
        return replace(self, tick_usd=CENT) == CostModel()


def _to_tick(value: Decimal, tick: Decimal, rounding) -> Decimal:
    if tick <= 0:
        return value
    return (value / tick).to_integral_value(rounding=rounding) * tick


COST_FIELDS = tuple(f.name for f in fields(CostModel))
# SymbolOverride columns that replace a setting for one symbol (None = use the setting).
OVERRIDE_FIELDS = (
    "spread_usd",
    "slippage_usd",
    "commission_per_share_usd",
    "commission_per_order_usd",
)


def cost_model_from_settings() -> CostModel:
    """The account-wide model: the COST_* settings, plus the paper settings of the spec
    (PAPER_SPREAD_BPS and PAPER_SLIPPAGE_BPS as the parts in bps, PAPER_COMMISSION_* added
    to the COST_COMMISSION_* values; all 0 by default)."""
    from django.conf import settings as s

    return CostModel(
        spread_usd=Decimal(s.COST_SPREAD_USD),
        slippage_usd=Decimal(s.COST_SLIPPAGE_USD),
        commission_per_share_usd=Decimal(s.COST_COMMISSION_PER_SHARE_USD)
        + Decimal(s.PAPER_COMMISSION_PER_SHARE_USD),
        commission_per_order_usd=Decimal(s.COST_COMMISSION_PER_ORDER_USD)
        + Decimal(s.PAPER_COMMISSION_PER_ORDER_USD),
        sec_fee_per_million=s.COST_SEC_FEE_PER_MILLION,
        taf_per_share_usd=s.COST_TAF_PER_SHARE_USD,
        taf_max_usd=s.COST_TAF_MAX_USD,
        tick_usd=s.COST_TICK_USD,
        spread_bps=Decimal(str(s.PAPER_SPREAD_BPS)),
        slippage_bps=Decimal(str(s.PAPER_SLIPPAGE_BPS)),
    )


def cost_model_for(base: CostModel, override=None) -> CostModel:
    """`base` with the values a symbol's override row (or any object with the same attributes)
    sets; None fields keep the base value."""
    if override is None:
        return base
    return base.with_(**{name: getattr(override, name, None) for name in OVERRIDE_FIELDS})
