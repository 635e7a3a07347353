"""HTML views of TFDV statistics and anomalies, shared by `kpipe validate` and
the run report.

TFDV's own statistics view (Facets) loads its scripts from cdnjs and GitHub
when it is shown, so it sits behind a button; the page itself makes no request.
Beside it, a table of the same statistics protos reads offline.
"""

from __future__ import annotations

import html

from tensorflow_data_validation.utils import display_util
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: #185c18; font-weight: bold; }
.bad { color: #a11; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _number(value: float) -> str:
    return f"{value:.4g}"


def _feature_rows(dataset: statistics_pb2.DatasetFeatureStatistics) -> list[str]:
    rows = []
    for feature in sorted(dataset.features, key=lambda item: item.path.step[:]):
        name = ".".join(feature.path.step) or feature.name
        kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
        if feature.HasField("num_stats"):
            numbers = feature.num_stats
            common = numbers.common_stats
            cells = [
                common.num_non_missing,
                common.num_missing,
                _number(common.avg_num_values),
                _number(numbers.mean),
                _number(numbers.std_dev),
                _number(numbers.min),
                _number(numbers.median),
                _number(numbers.max),
                numbers.num_zeros,
                "",
            ]
        elif feature.HasField("string_stats"):
            strings = feature.string_stats
            common = strings.common_stats
            top = ", ".join(
                f"{value.value} ({int(value.frequency)})"
                for value in strings.top_values[:3]
            )
            cells = [
                common.num_non_missing,
                common.num_missing,
                _number(common.avg_num_values),
                *[""] * 6,
                f"{strings.unique} unique; top: {top}",
            ]
        else:
            cells = [""] * 10
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(kind)}</td>"
            + "".join(
                f"<td class='number'>{html.escape(str(cell))}</td>" for cell in cells
            )
            + "</tr>"
        )
    return rows


def statistics_table(statistics_by_split: dict) -> str:
    """One table per split of the numbers TFDV computed, feature by feature."""
    parts = []
    for split, statistics in statistics_by_split.items():
        for dataset in statistics.datasets:
            parts.append(
                f"<h4>{html.escape(split)}: {dataset.num_examples} examples</h4>"
                "<table><tr><th>feature</th><th>type</th><th>present</th>"
                "<th>missing</th><th>values per example</th><th>mean</th>"
                "<th>std dev</th><th>min</th><th>median</th><th>max</th>"
                "<th>zeros</th><th>strings</th></tr>"
                + "".join(_feature_rows(dataset))
                + "</table>"
            )
    return "".join(parts)


def facets_view(train, evaluation) -> str:
    """TFDV's statistics view of train against eval, loaded on request.

    The view is inside a <template>, whose scripts do not run and whose
    resources are not fetched until the button copies it into the page.
    """
    view = display_util.get_statistics_html(
        train, evaluation, lhs_name="train", rhs_name="eval"
    )
    return (
        "<p><button type='button' onclick=\""
        "var t=document.getElementById('tfdv-view');"
        "t.parentNode.replaceChild(document.importNode(t.content,true),t);"
        "this.disabled=true;\">Show TFDV's interactive view</button> "
        "(Facets; fetches its scripts from cdnjs.cloudflare.com and "
        "raw.githubusercontent.com, so it needs internet access)</p>"
        f"<template id='tfdv-view'>{view}</template>"
    )


def statistics_section(statistics_by_split: dict, train_split: str, eval_split: str):
    """The statistics table and, when both splits exist, TFDV's view of them."""
    train = statistics_by_split.get(train_split)
    evaluation = statistics_by_split.get(eval_split)
    facets = (
        facets_view(train, evaluation)
        if train is not None and evaluation is not None
        else ""
    )
    return statistics_table(statistics_by_split) + facets


def anomalies_section(anomalies_by_split: dict[str, anomalies_pb2.Anomalies]) -> str:
    """TFDV's anomalies table of each split, or a line saying there are none."""
    parts = []
    for split, anomalies in anomalies_by_split.items():
        table = display_util.get_anomalies_dataframe(anomalies)
        if table.empty:
            parts.append(f"<p>{html.escape(split)}: no anomalies.</p>")
        else:
            parts.append(
                f"<h4>{html.escape(split)}</h4>" + table.to_html(escape=True, border=0)
            )
    return "".join(parts)
