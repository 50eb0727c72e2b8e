"""A small flight-search MCP server with fixed data, written with the ``mcp`` SDK.

It stands in for the seed's kiwi.com server, offline: ``search-flight`` finds
flights between two cities on a date from a fixed timetable.  Run:
``python -m demo.flights --port 3002``; it prints ``READY <url>`` when serving.
"""

from __future__ import annotations

import argparse

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

AIRPORTS = {
    "los angeles": "LAX",
    "lax": "LAX",
    "san francisco": "SFO",
    "sfo": "SFO",
    "new york": "JFK",
    "jfk": "JFK",
    "seattle": "SEA",
    "sea": "SEA",
}

#: (from, to, departure, arrival, price USD, booking code)
TIMETABLE = [
    ("LAX", "SFO", "06:00", "07:25", 175, "HLfnjw"),
    ("LAX", "SFO", "13:35", "15:02", 207, "gKmZo8"),
    ("LAX", "SFO", "17:30", "19:12", 157, "0q5sEP"),
    ("LAX", "SFO", "18:47", "20:28", 138, "KT16R0"),
    ("LAX", "SFO", "19:45", "21:07", 183, "C9naT5"),
    ("LAX", "SFO", "21:30", "22:56", 133, "Yl8Tzg"),
    ("SFO", "LAX", "08:10", "09:35", 149, "pQ2rTz"),
    ("JFK", "SEA", "07:00", "10:20", 289, "mW8kLs"),
    ("SEA", "JFK", "12:15", "20:40", 301, "aZ4nBv"),
]


def airport(city: str) -> str:
    code = AIRPORTS.get(city.strip().lower())
    if code is None:
        raise ValueError(
            f"unknown city or airport: {city!r}; try one of {sorted(set(AIRPORTS.values()))}"
        )
    return code


def build_server() -> MCPServer:
    server = MCPServer(
        name="demo-flights",
        version="1.0.0",
        instructions="Search flights between cities with search-flight; sort by price or duration.",
    )

    @server.tool(name="search-flight", description="Find flights between two cities on a date")
    def search_flight(
        fly_from: str, fly_to: str, departure_date: str, sort: str = "price"
    ) -> list[dict[str, object]]:
        origin, destination = airport(fly_from), airport(fly_to)
        flights = [
            {
                "flyFrom": f,
                "flyTo": t,
                "date": departure_date,
                "departure": dep,
                "arrival": arr,
                "price": price,
                "currency": "USD",
                "book": f"https://example.invalid/book/{code}",
            }
            for f, t, dep, arr, price, code in TIMETABLE
            if f == origin and t == destination
        ]
        key = "price" if sort == "price" else "departure"
        return sorted(flights, key=lambda flight: flight[key])  # type: ignore[arg-type, return-value]

    @server.tool(name="feedback-to-devs", description="Send feedback about the flight search")
    def feedback(text: str) -> str:
        return f"thank you, {len(text)} characters of feedback recorded"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3002)
    args = parser.parse_args()
    app = build_server().streamable_http_app(host="127.0.0.1")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
    )

    async def serve() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            with anyio.fail_after(20):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                    await anyio.sleep(0.02)
            print(f"READY http://127.0.0.1:{args.port}/mcp", flush=True)

    anyio.run(serve)


if __name__ == "__main__":
    main()
