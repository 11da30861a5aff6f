"""Collecting figures across runs and printing the one table (text and Markdown)."""

import statistics
from dataclasses import dataclass, field

REFERENCE = "node"


@dataclass
class Results:
    """Values keyed by (scenario, server, metric), in the order first recorded."""

    values: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, scenario: str, server: str, metric: str, value: float) -> None:
        self.values.setdefault((scenario, server, metric), []).append(value)

    def rows(self) -> list[list[str]]:
        order: dict[str, int] = {}
        for scenario, _, _ in self.values:
            order.setdefault(scenario, len(order))
        servers: list[str] = []
        for _, server, _ in self.values:
            if server not in servers:
                servers.append(server)
        metric_order: dict[tuple[str, str], int] = {}
        for scenario, _, metric in self.values:
            metric_order.setdefault((scenario, metric), len(metric_order))
        keys = sorted(self.values, key=lambda k: (order[k[0]], metric_order[(k[0], k[2])],
                                                  servers.index(k[1])))
        rows = []
        for scenario, server, metric in keys:
            values = self.values[(scenario, server, metric)]
            median = statistics.median(values)
            reference = self.values.get((scenario, reference_of(server), metric))
            versus = "-"
            if reference and server != reference_of(server):
                ref_median = statistics.median(reference)
                if ref_median:
                    versus = f"{median / ref_median:.2f}x"
            rows.append([scenario, server, metric, number(median),
                         f"{number(min(values))}-{number(max(values))}", str(len(values)),
                         versus])
        return rows


def reference_of(server: str) -> str:
    """The Node server with the same compression setting is the reference."""
    return REFERENCE + ("+deflate" if server.endswith("+deflate") else "")


def number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


HEADER = ["scenario", "server", "metric", "median", "min-max", "runs", "vs node"]
LEGEND = ("vs node: this server's median / the Node reference's median (same compression); "
          "for ms, KB, s, lost and failed lower is better, for rates higher is better.")


def text_table(results: Results) -> str:
    rows = [HEADER, *results.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {3, 4, 5, 6}

    def line(row: list[str]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    out = [line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    out.append("")
    out.append(LEGEND)
    return "\n".join(out)


def markdown_table(results: Results) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in results.rows()]
    out.append("")
    out.append(LEGEND)
    return "\n".join(out)
