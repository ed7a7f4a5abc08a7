"""A search tree as one self-contained HTML page a person opens in a browser: no script, no network, every node a
collapsible box with its step text, prior, visits, value and verdict; the chosen path marked and open."""

from __future__ import annotations

import html
from typing import Any

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.2em; } .summary { margin-bottom: 1em; }
details { margin-left: 1.2em; border-left: 2px solid #ddd; padding-left: .6em; }
details.chosen { border-left-color: #2a7; } details.chosen > summary .step { font-weight: 600; }
summary { cursor: pointer; } .step { white-space: pre-wrap; font-family: ui-monospace, monospace; }
.stats { color: #666; font-size: .85em; margin-left: .6em; }
.ok { color: #2a7; } .wrong { color: #c33; } .leaf { list-style: none; }
"""


def _node_html(node: dict[str, Any]) -> str:
    stats = f"prior {node['prior']:.3f} · visits {node['visits']} · value {node['value']:.3f}"
    if node.get("score") is not None:
        stats += f" · score {node['score']:.3f}"
    if node.get("terminal"):
        verdict = node.get("correct")
        mark = "" if verdict is None else (' <span class="ok">✔ correct</span>' if verdict
                                           else ' <span class="wrong">✘ wrong</span>')
        stats += f" · answer {html.escape(str(node.get('answer')))}{mark}"
    step = html.escape(node["step"].rstrip("\n")) or "(problem)"
    children = "".join(_node_html(child) for child in node["children"])
    chosen = node.get("chosen", False)
    return (f'<details class="{"chosen" if chosen else ""}"{" open" if chosen else ""}><summary>'
            f'<span class="step">{step}</span><span class="stats">{stats}</span></summary>{children}</details>')


def tree_html(result: dict[str, Any], title: str = "search tree") -> str:
    """The page for a `SearchResult.to_dict()` (or any dict with "tree" as `search.api.tree_to_dict` writes it,
    and optionally method, answer, correct and tokens)."""
    summary = []
    for key in ("method", "answer", "correct", "value"):
        if result.get(key) is not None:
            summary.append(f"{key}: <b>{html.escape(str(result[key]))}</b>")
    if result.get("tokens"):
        summary.append("tokens: " + ", ".join(f"{k} {v}" for k, v in result["tokens"].items()))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<div class='summary'>{' · '.join(summary)}</div>{_node_html(result['tree'])}</body></html>")
