"""A payment record shaped like point3's documented examples, for tests that vary one field."""


def record(**changes):
    """The docs' example order; a field set to `...` is left out."""
    raw = {
        "signature": "CnwGnosGohK2iu3cSrE68Ew4xVLr98Gl",
        "userId": "1",
        "clientNickname": "바이올렛 캔디 앤 젤리",
        "purchasingProductName": "바이올렛 솜사탕맛 젤리",
        "totalCharge": 1000,
        "taxFreeAmount": 900,
        "vat": 100,
        "orderIdFromClient": "orderIdRandom",
        "clientIdentification": "widgetpaytester0",
        "clientGeneratedUserId": "IDIDIDIDIDIDIDIDIDIDIDIDIDIDT0",
        "isCanceled": False,
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not ...}
