"""The built-in demo catalog of the sandbox supplier (`--demo`), in the `POST /admin/catalog` shape.

Money is in minor units (38000 is ¥380.00); times carry the +08:00 offset of the venues.
"""

from __future__ import annotations

from typing import Any


def _tier(
    ref: str, name: str, face_value: int, price: int, settlement_price: int, stock: int
) -> dict[str, Any]:
    return {
        "ref": ref,
        "name": name,
        "face_value": face_value,
        "price": price,
        "settlement_price": settlement_price,
        "currency": "CNY",
        "stock": stock,
    }


def demo_catalog() -> dict[str, Any]:
    """A fresh copy of the demo catalog (callers may change it freely)."""
    return {
        "shows": [
            {
                "ref": "sbx_show_sh_concert",
                "title": "星河巡回演唱会 上海站",
                "city": "上海",
                "category": "concert",
                "venue": "梅赛德斯-奔驰文化中心",
                "starts_at": "2026-12-19T19:30:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": "sbx_ses_sh_concert_1219",
                        "starts_at": "2026-12-19T19:30:00+08:00",
                        "status": "online",
                        "tiers": [
                            _tier("sbx_tier_sh_1219_vip", "VIP", 128000, 120000, 108000, 100),
                            _tier("sbx_tier_sh_1219_a", "A区", 68000, 64000, 57600, 300),
                            _tier("sbx_tier_sh_1219_b", "B区", 38000, 36000, 32400, 500),
                        ],
                    },
                    {
                        "ref": "sbx_ses_sh_concert_1220",
                        "starts_at": "2026-12-20T19:30:00+08:00",
                        "status": "online",
                        "tiers": [
                            _tier("sbx_tier_sh_1220_vip", "VIP", 128000, 120000, 108000, 100),
                            _tier("sbx_tier_sh_1220_a", "A区", 68000, 64000, 57600, 300),
                            _tier("sbx_tier_sh_1220_b", "B区", 38000, 36000, 32400, 500),
                        ],
                    },
                ],
            },
            {
                "ref": "sbx_show_bj_theatre",
                "title": "话剧《茶馆》",
                "city": "北京",
                "category": "theatre",
                "venue": "北京人民艺术剧院首都剧场",
                "starts_at": "2026-12-05T19:30:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": "sbx_ses_bj_theatre_1205",
                        "starts_at": "2026-12-05T19:30:00+08:00",
                        "status": "online",
                        "tiers": [
                            _tier("sbx_tier_bj_1205_stalls", "池座", 68000, 64000, 58000, 200),
                            _tier("sbx_tier_bj_1205_balcony", "楼座", 28000, 26000, 23000, 150),
                        ],
                    },
                    {
                        "ref": "sbx_ses_bj_theatre_1206",
                        "starts_at": "2026-12-06T14:00:00+08:00",
                        "status": "online",
                        "tiers": [
                            _tier("sbx_tier_bj_1206_stalls", "池座", 68000, 64000, 58000, 200),
                            _tier("sbx_tier_bj_1206_balcony", "楼座", 28000, 26000, 23000, 150),
                        ],
                    },
                ],
            },
            {
                "ref": "sbx_show_sh_theatre",
                "title": "音乐剧《猫》中文版",
                "city": "上海",
                "category": "theatre",
                "venue": "上海大剧院",
                "starts_at": "2027-01-08T19:30:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": "sbx_ses_sh_theatre_0108",
                        "starts_at": "2027-01-08T19:30:00+08:00",
                        "status": "online",
                        "tiers": [
                            _tier("sbx_tier_sh_0108_a", "甲等", 88000, 80000, 72000, 120),
                            _tier("sbx_tier_sh_0108_b", "乙等", 48000, 45000, 40000, 240),
                        ],
                    },
                ],
            },
        ]
    }
