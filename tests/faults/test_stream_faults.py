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
    assert figures["gaps_filled"] > 0  # whole minutes were lost and came back from REST
    assert figures["provisional_closed"] > 0 and figures["bars_healed"] > 0  # partial ones too
    assert figures["not_entitled_dropped"] is True
    assert figures["unexpected_symbols"] == []
    assert figures["bars_lost"] == 0
    assert figures["bars_duplicate"] == 0
    assert figures["bars_partial"] == 0  # every partly-seen minute ends as the provider's bar
    assert figures["bars_provisional_left"] == 0
