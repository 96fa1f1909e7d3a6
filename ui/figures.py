"""The figures' shared vocabulary: the colour-blind-safe palette and how events are named and coloured
(the figures themselves are in ``ui.timeline``)."""

from __future__ import annotations

# Okabe-Ito colour-blind-safe palette.
BLUE, ORANGE, VERMILLION, SKY, GREEN, PURPLE, GREY = (
    "#0072B2",
    "#E69F00",
    "#D55E00",
    "#56B4E9",
    "#009E73",
    "#CC79A7",
    "#7F7F7F",
)
BAND_FILL = "rgba(0, 158, 115, 0.14)"
EVENT_COLOURS = {
    "chemotherapy": PURPLE,
    "gcsf": GREEN,
    "medication": ORANGE,
    "infection": VERMILLION,
    "fever": VERMILLION,
    "supplement": SKY,
    "transfusion": BLUE,
    "note": GREY,
}
# A fever written in an event's free text is not a recorded temperature: it says so wherever it shows
# (recorded temperatures have their own row on the timeline and are what the product judges).
FEVER_FROM_EVENT = "fever (free text, from an event)"
EVENT_NAMES = {"gcsf": "G-CSF", "fever": FEVER_FROM_EVENT.capitalize()}
