"""An SVG status badge, `dockercise | passing` (pure): what a README shows for a branch."""

from __future__ import annotations

from markupsafe import escape

__all__ = ["badge"]

_WORDS = {
    "success": ("passing", "#2e7d32"),
    "failure": ("failing", "#c62828"),
    "error": ("error", "#c62828"),
    "cancelled": ("cancelled", "#757575"),
    "running": ("running", "#f9a825"),
}
_CHAR = 7  # px a character, roughly, in 11px Verdana


def badge(status: str | None, label: str = "dockercise") -> str:
    """The badge of a run whose status is `status` (None: no build of that branch yet)."""
    word, colour = _WORDS.get(status or "", ("unknown", "#9e9e9e"))
    left, right = len(label) * _CHAR + 10, len(word) * _CHAR + 10
    width = left + right
    label_text, word_text = escape(label), escape(word)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img"'
        f' aria-label="{label_text}: {word_text}"><title>{label_text}: {word_text}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,sans-serif" font-size="11">'
        f'<text x="{left / 2}" y="14">{label_text}</text>'
        f'<text x="{left + right / 2}" y="14">{word_text}</text></g></svg>'
    )
