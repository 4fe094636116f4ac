#!/usr/bin/env python3
"""Render text (the table output of `echoloc replay`) as an SVG picture.

    ./target/release/echoloc replay --format table FILES... | python3 scripts/table-svg.py > docs/table.svg
"""
import html
import sys

lines = sys.stdin.read().rstrip("\n").split("\n")
cw, lh, pad = 7.2, 17, 12
width = int(max(len(l) for l in lines) * cw + 2 * pad)
height = int(len(lines) * lh + 2 * pad)
out = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
    f'<rect width="100%" height="100%" fill="#1e1e1e"/>',
    '<g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12" xml:space="preserve">',
]
for i, line in enumerate(lines):
    # An alert: a relay suspected (`*` after a hidden latency) or a typist over policy (`!`).
    color = "#9cdcfe" if i == 0 else ("#f48771" if "*" in line or "!" in line else "#d4d4d4")
    out.append(f'<text x="{pad}" y="{pad + (i + 1) * lh - 4}" fill="{color}">{html.escape(line)}</text>')
out.append("</g></svg>")
print("\n".join(out))
