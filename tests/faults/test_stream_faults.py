"""The streamer survives a hostile Polygon: 0 crashes, 0 lost bars, 0 doubled bars."""

import pytest

from tests.faults.sizes import size
from tests.faults.stream_faults import run_stream_faults


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_stream_survives_drops_junk_and_entitlement_errors():
    figures = run_stream_faults(
        minutes=size(20, 240), malformed=size(300, 10_000), drop_every=size(30, 60)
    )
    print(figures)
    assert figures["crashes"] == 0, figures["crash"]
    assert figures["disconnects"] >= 3 and figures["malformed_frames"] == size(300, 10_000)
    assert figures["backfilled_bars"] > 0  # whole minutes were lost and came back from REST
    assert figures["not_entitled_dropped"] is True
    assert figures["unexpected_symbols"] == []
    assert figures["lost_bars"] == 0
    assert figures["doubled_bars"] == 0
