"""A scripted voice call's metrics in a real Prometheus, answered in PromQL as the spans say.

livekit-agents is instrumented on an in-memory tracer provider, and ``setup_prometheus``
gives the same instrumentation its meter provider (port 0: a free loopback port). A real
``prometheus`` (tests/support/prometheus.py) scrapes that endpoint every second and has
scraped it once before any call. Two scripted audio calls run, each with five turns
(replies whose first token comes after 0.05 to 1.1 s, so the latencies spread over several
buckets; a tool call; a reply the caller interrupts), with a scrape after each. Then:

- every question is asked twice: over all that was recorded (the cumulative series), and
  for the second call alone (the series now minus the series ``@`` a time between the two
  calls, so nothing is extrapolated); sums and counts must equal the spans' exactly (sums
  within the microsecond the spans round latencies to), and each quantile must fall in the
  bucket that holds the spans' own quantile;
- every PromQL query of ``docs/metrics.md`` and of the Grafana dashboard
  (``docs/grafana/livekit-otel-dashboard.json``, Grafana's ``$__rate_interval`` and
  ``$__range`` written out) runs against the same Prometheus and must answer numbers.

The first call also creates every series, so the second one is what the dashboard's
``rate()`` and ``increase()`` see, as on a worker that has taken calls before: Prometheus
2.42 reads a series' first value as its baseline.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.prometheus import in_ci

if importlib.util.find_spec("opentelemetry.exporter.prometheus") is None:
    # the dev install brings it (livekit-otel[prometheus]); CI must not skip these tests
    missing = "opentelemetry-exporter-prometheus is not installed (livekit-otel[prometheus])"
    if in_ci():
        pytest.fail(f"CI=true and {missing}", pytrace=False)
    pytest.skip(missing, allow_module_level=True)

from livekit_otel_dev.scripted import TimedReply, ToolCall, UserTurn, run_scripted_session

from livekit_otel import LiveKitAgentsInstrumentor, setup_prometheus
from livekit_otel.mapping.instruments import VOICE_LATENCY_BUCKETS
from livekit_otel.setup import installed as setup_state
from support.prometheus import PrometheusServer, Sample, prometheus_fixture
from support.tracing import SpanTree, attributes, instrumented

pytestmark = pytest.mark.e2e

prometheus = prometheus_fixture(scope="module")

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "docs" / "grafana" / "livekit-otel-dashboard.json"
METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
"""What Grafana writes in place of its variables; 1 h covers the whole test."""

STORY = "Once upon a time there was a fox who lived by the river. " * 6
SCRIPT = [
    UserTurn("hello there", reply=TimedReply("Hello! How can I help you today?", ttft=0.05)),
    UserTurn(
        "what is the weather in Paris",
        reply=TimedReply(ToolCall("lookup_weather", {"location": "Paris"}), ttft=0.15),
    ),
    UserTurn("tell me a story", reply=TimedReply(STORY, ttft=0.3), interrupt_after=0.02),
    UserTurn("and what about Oslo", reply=TimedReply("It is sunny in Oslo.", ttft=0.6)),
    UserTurn("thanks, goodbye", reply=TimedReply("Goodbye, have a nice day!", ttft=1.1)),
]
# prices for the scripted models (docs/cost.md: the prices option), so the calls have costs
PRICES = {
    "scripted-llm-1": {"input": 2.0, "input_cached_tokens": 0.5, "output": 8.0},
    "scripted-stt-1": {"kind": "stt", "unit": "minute", "input_audio_seconds": 0.006},
    "scripted-tts-1": {"kind": "tts", "input_characters": 15.0},
}
COST_KINDS = ("llm", "stt", "tts")
PARTS = ("end_of_turn", "on_user_turn_completed", "llm", "tools", "tts", "playout")
SELECTOR = re.compile(r"\b(?:lk|gen_ai)_\w+(?:_bucket|_sum|_count|_total)\b(?:\{[^}]*\})?")
"""A series selector of livekit-otel's metrics in a query."""
ROUNDING_S = 1e-6
"""Per value: spans carry latencies rounded to the microsecond, metrics the exact ones."""


@dataclass
class Calls:
    """Two scripted calls scraped by Prometheus, with the spans of each."""

    server: PrometheusServer
    first: SpanTree
    second: SpanTree
    between: float
    """A Unix time at which Prometheus holds the first call's values and none of the second's."""

    def spans(self, scope: str) -> list[SpanTree]:
        return [self.first, self.second] if scope == "all" else [self.second]

    def promql(self, expr: str, scope: str) -> str:
        """``expr`` over everything recorded, or only what the second call added: ``expr``
        minus ``expr`` with every series read ``@`` the time between the calls."""
        if scope == "all":
            return expr
        earlier = SELECTOR.sub(lambda match: f"{match.group(0)} @ {self.between:.3f}", expr)
        return f"({expr}) - ({earlier})"

    def by(self, label: str, expr: str, scope: str) -> dict[str, float]:
        return {labels.get(label, ""): value for labels, value in self.query(expr, scope)}

    def query(self, expr: str, scope: str) -> list[Sample]:
        return self.server.query(self.promql(expr, scope))

    def value(self, expr: str, scope: str) -> float:
        return self.server.value(self.promql(expr, scope))


@pytest.fixture(scope="module")
def calls(prometheus: Any) -> Iterator[Calls]:
    LiveKitAgentsInstrumentor().uninstrument()
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        instrumented(environment="e2e", prices=PRICES) as tracing,
    ):
        monkeypatch.setattr(setup_state, "_installed", None)
        monkeypatch.setattr(setup_state, "_served", None)
        try:
            setup_prometheus(port=0)  # the instrumentation in force now records to it
            assert setup_state._served is not None
            server: PrometheusServer = prometheus(f"127.0.0.1:{setup_state._served.port}")
            server.wait_until_scraped()  # before any call: nothing recorded is missed

            asyncio.run(run_scripted_session(SCRIPT, mode="audio"))
            first = tracing.tree()
            tracing.clear()
            server.wait_until_scraped()
            between = time.time()

            asyncio.run(run_scripted_session(SCRIPT, mode="audio"))
            second = tracing.tree()
            server.wait_until_scraped(scrapes=2)  # two samples after it for rate()
            yield Calls(server, first, second, between)
        finally:
            if setup_state._served is not None:
                setup_state._served.close()


# -- what the spans say ------------------------------------------------------------------------
def agent_turns(trees: list[SpanTree]) -> list[dict[str, Any]]:
    return [attributes(span) for tree in trees for span in tree.named("agent_turn")]


def heard(trees: list[SpanTree]) -> list[dict[str, Any]]:
    return [turn for turn in agent_turns(trees) if "lk.turn.perceived_latency" in turn]


def llm_nodes(trees: list[SpanTree]) -> list[dict[str, Any]]:
    return [attributes(span) for tree in trees for span in tree.named("llm_node")]


def session_total(trees: list[SpanTree], key: str) -> float:
    return sum(attributes(tree.one("agent_session"))[key] for tree in trees)


def quantile_bucket(values: list[float], q: float) -> tuple[float, float]:
    """The bucket (lower, upper] holding the spans' own ``q`` quantile: the value of rank
    ceil(q * n), which is where ``histogram_quantile`` looks for it."""
    ordered = sorted(values)
    value = ordered[max(math.ceil(q * len(ordered)), 1) - 1]
    bounds = (0.0, *VOICE_LATENCY_BUCKETS, math.inf)
    for lower, upper in itertools.pairwise(bounds):
        if lower < value <= upper:
            return lower, upper
    raise AssertionError(f"{value} in no bucket")


SCOPES = ["all", "second_call"]


# -- the contract's questions, answered by Prometheus --------------------------------------------
def test_the_calls_had_tool_calls_interruptions_and_spread_latencies(calls: Calls) -> None:
    for tree in (calls.first, calls.second):
        turns = agent_turns([tree])
        assert len(turns) == len(SCRIPT)
        assert sum(1 for turn in turns if turn["lk.turn.interrupted"]) == 1
        assert len(tree.named("function_tool")) == 1
    latencies = [turn["lk.turn.perceived_latency"] for turn in heard([calls.second])]
    assert len({quantile_bucket([value], 1.0) for value in latencies}) >= 4


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("q", [0.5, 0.95])
def test_perceived_latency_quantile_falls_in_the_spans_bucket(
    calls: Calls, scope: str, q: float
) -> None:
    values = [turn["lk.turn.perceived_latency"] for turn in heard(calls.spans(scope))]
    buckets = "sum by (le) (lk_turn_perceived_latency_seconds_bucket)"
    expr = f"histogram_quantile({q}, {calls.promql(buckets, scope)})"

    answer = calls.server.value(expr)

    lower, upper = quantile_bucket(values, q)
    assert lower <= answer <= upper, (answer, sorted(values))


@pytest.mark.parametrize("scope", SCOPES)
def test_perceived_latency_sum_and_count_equal_the_spans(calls: Calls, scope: str) -> None:
    values = [turn["lk.turn.perceived_latency"] for turn in heard(calls.spans(scope))]

    count = calls.value("sum(lk_turn_perceived_latency_seconds_count)", scope)
    total = calls.value("sum(lk_turn_perceived_latency_seconds_sum)", scope)

    assert count == len(values)
    assert total == pytest.approx(sum(values), abs=ROUNDING_S * len(values))


@pytest.mark.parametrize("scope", SCOPES)
def test_latency_parts_sums_and_counts_equal_the_spans(calls: Calls, scope: str) -> None:
    turns = heard(calls.spans(scope))

    sums = calls.by(
        "lk_latency_part", "sum by (lk_latency_part) (lk_turn_latency_seconds_sum)", scope
    )
    counts = calls.by(
        "lk_latency_part", "sum by (lk_latency_part) (lk_turn_latency_seconds_count)", scope
    )

    assert counts == dict.fromkeys(PARTS, len(turns))
    assert set(sums) == set(PARTS)
    for part in PARTS:
        expected = sum(turn[f"lk.turn.latency.{part}"] for turn in turns)
        assert sums[part] == pytest.approx(expected, abs=ROUNDING_S * len(turns)), part
    assert sums["tools"] > 0 and sums["llm"] > 1.0


@pytest.mark.parametrize("scope", SCOPES)
def test_turns_by_interruption_equal_the_spans(calls: Calls, scope: str) -> None:
    turns = agent_turns(calls.spans(scope))

    counts = calls.by("lk_turn_interrupted", "sum by (lk_turn_interrupted) (lk_turns_total)", scope)

    assert counts == {
        "false": sum(1 for turn in turns if not turn["lk.turn.interrupted"]),
        "true": sum(1 for turn in turns if turn["lk.turn.interrupted"]),
    }


@pytest.mark.parametrize("scope", SCOPES)
def test_token_usage_by_type_equals_the_llm_node_spans(calls: Calls, scope: str) -> None:
    nodes = llm_nodes(calls.spans(scope))

    sums = calls.by(
        "gen_ai_token_type", "sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum)", scope
    )
    calls_counted = calls.value("sum(gen_ai_client_operation_duration_seconds_count)", scope)

    assert sums == {
        "input": sum(node.get("gen_ai.usage.input_tokens", 0) for node in nodes),
        "output": sum(node.get("gen_ai.usage.output_tokens", 0) for node in nodes),
    }
    assert calls_counted == len(nodes)


@pytest.mark.parametrize("scope", SCOPES)
def test_tts_characters_equal_the_session_totals(calls: Calls, scope: str) -> None:
    expected = session_total(calls.spans(scope), "lk.usage.tts_characters_count")

    assert calls.value("sum(lk_usage_tts_characters_total)", scope) == expected > 0


@pytest.mark.parametrize("scope", SCOPES)
def test_stt_seconds_equal_the_session_totals(calls: Calls, scope: str) -> None:
    expected = session_total(calls.spans(scope), "lk.usage.stt_audio_duration")

    answer = calls.value("sum(lk_usage_stt_audio_duration_seconds_total)", scope)

    assert answer == pytest.approx(expected) and answer > 0


@pytest.mark.parametrize("scope", SCOPES)
def test_cost_by_kind_equals_the_calls_costs_on_their_spans(calls: Calls, scope: str) -> None:
    by_kind = calls.by("lk_kind", "sum by (lk_kind) (lk_cost_USD_total)", scope)

    assert set(by_kind) == set(COST_KINDS)
    for kind in COST_KINDS:
        expected = session_total(calls.spans(scope), f"lk.call.cost.{kind}")
        assert by_kind[kind] == pytest.approx(expected, abs=1e-9) and expected > 0, kind


@pytest.mark.parametrize("scope", SCOPES)
def test_each_call_records_its_cost_duration_and_turns_once(calls: Calls, scope: str) -> None:
    trees = calls.spans(scope)

    assert calls.value("sum(lk_call_cost_USD_count)", scope) == len(trees)
    assert calls.value("sum(lk_call_duration_seconds_count)", scope) == len(trees)
    assert calls.value("sum(lk_call_turns_sum)", scope) == session_total(trees, "lk.call.turns")
    assert calls.value("sum(lk_call_cost_USD_sum)", scope) == pytest.approx(
        session_total(trees, "lk.call.cost.total"), abs=1e-9
    )
    assert calls.value("sum(lk_call_duration_seconds_sum)", scope) == pytest.approx(
        session_total(trees, "lk.call.duration"), abs=ROUNDING_S * len(trees)
    )


def test_the_cost_series_carry_kind_model_and_provider_only(calls: Calls) -> None:
    labels = {
        key: value
        for labels_, _ in calls.server.query("lk_cost_USD_total")
        for key, value in labels_.items()
        if key.startswith("lk_")
    }
    models = {labels_.get("lk_model") for labels_, _ in calls.server.query("lk_cost_USD_total")}

    assert set(labels) == {"lk_kind", "lk_model", "lk_provider"}
    assert models == set(PRICES)


def test_series_carry_the_agent_and_environment_and_no_high_cardinality_label(
    calls: Calls,
) -> None:
    (labels, _), *_ = calls.server.query("lk_turn_perceived_latency_seconds_count")
    every_label = {
        key
        for name in (
            "lk_turns_total",
            "gen_ai_client_token_usage_count",
            "lk_turn_latency_seconds_count",
        )
        for labels_, _ in calls.server.query(name)
        for key in labels_
    }

    assert labels["lk_agent_name"] == "scripted_agent"
    assert labels["deployment_environment_name"] == "e2e"
    assert every_label.isdisjoint({"session_id", "user_id", "lk_speech_id", "langfuse_session_id"})


# -- the queries of the docs and the dashboard ---------------------------------------------------
def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    found = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    assert found, "the dashboard has no query"
    return found


def doc_queries() -> list[str]:
    """Every ```promql block of docs/metrics.md."""
    found = re.findall(r"```promql\n(.*?)```", METRICS_DOC.read_text("utf-8"), re.DOTALL)
    assert found, "docs/metrics.md has no promql block"
    return [block.strip() for block in found]


def grafana_expanded(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not write out: {expr}"
    return expr


def numbers(samples: list[Sample]) -> list[float]:
    return [value for _, value in samples]


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource_on_every_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}

    assert variables["datasource"]["query"] == "prometheus"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) >= 1, panel["title"]


@pytest.mark.parametrize(("title", "expr"), dashboard_queries())
def test_every_dashboard_query_answers_numbers(calls: Calls, title: str, expr: str) -> None:
    samples = calls.server.query(grafana_expanded(expr))

    assert samples, f"{title!r}: no series for {expr}"
    assert all(math.isfinite(value) for value in numbers(samples)), (title, samples)


@pytest.mark.parametrize("expr", doc_queries())
def test_every_query_of_the_metrics_doc_answers_numbers(calls: Calls, expr: str) -> None:
    samples = calls.server.query(expr)

    assert samples, f"no series for {expr}"
    assert all(math.isfinite(value) for value in numbers(samples)), (expr, samples)


def test_the_dashboards_windowed_p95_sees_the_second_call(calls: Calls) -> None:
    """rate() and increase() see the second call only: the first one is every series' first
    value, the baseline. Their extrapolation scales each bucket almost alike, so the p95 over
    the window falls in the bucket of the second call's own p95, or next to it."""
    expr = (
        "histogram_quantile(0.95, sum by (le) "
        "(increase(lk_turn_perceived_latency_seconds_bucket[$__range])))"
    )
    values = [turn["lk.turn.perceived_latency"] for turn in heard([calls.second])]
    bounds = (0.0, *VOICE_LATENCY_BUCKETS)

    answer = calls.server.value(grafana_expanded(expr))

    lower, upper = quantile_bucket(values, 0.95)
    below = bounds[max(bounds.index(lower) - 1, 0)]
    assert below <= answer <= upper, (answer, sorted(values))
