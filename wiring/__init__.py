"""The project's wiring, above the apps: webhook alerts and the websocket/worker routes. It may
import every app; `autotrader_site` keeps only the foundation (clock, metrics, settings)."""
