"""The Polygon websocket streamer: one connection per cluster → ticks → 1-minute bars."""
