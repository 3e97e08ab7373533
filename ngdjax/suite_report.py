"""A suite's outputs (docs/suite.md): ``suite.json`` (one row per case), ``suite.md`` (the table)
and ``suite.png`` (the contact sheet: for each case a few frames of target | fit from the
training camera, then the fit and the truth of one frame seen from the front and from behind,
coloured by their distance to each other: from the training camera alone a fit whose
never-seen back is centimetres off looks perfect)."""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ngdjax.io import read_image, read_mesh, write_text
from ngdjax.outputs import MESHES, RENDERS, mesh_path
from ngdjax.data.sequence import frame_name
from ngdjax.data.synthetic import DIFFICULTY_FLOORS

# (column title, row key, number format); "ratio" columns divide the fit's value by the template's.
TABLE = (
    ("Chamfer", "chamfer_x1e3", "{:.3f}"),
    ("/ template", "ratio:chamfer_x1e3", "1/{:.2f}"),
    ("seen", "ratio:chamfer_seen_x1e3", "1/{:.2f}"),
    ("never seen", "ratio:chamfer_unseen_x1e3", "1/{:.2f}"),
    ("unseen %", "unseen_fraction", "{:.0%}"),
    ("NC", "normal_consistency", "{:.3f}"),
    ("NC template", "template_normal_consistency", "{:.3f}"),
    ("NC seen - template", "delta:normal_consistency_seen", "{:+.3f}"),
    ("F@1cm", "fscore_1cm", "{:.3f}"),
    ("IoU", "mask_iou", "{:.3f}"),
    ("PSNR", "psnr", "{:.2f}"),
)
DIFFICULTY = (("static cm", "static_rms_m", 100, "{:.1f}"), ("folds cm", "fold_amplitude_m", 100, "{:.1f}"),
              ("sway cm", "hem_sway_m", 100, "{:.1f}"))
FRAME_RENDER = re.compile(r"^\d{4,}\.png$")  # renders/XXXX.png, not the turntable or the textured renders
FRAME_MESH = re.compile(r"^frame_(\d{4,})\.obj$")  # meshes/frame_XXXX.obj, not the textured OBJs' files


def write_suite_json(out: str, rows: list[dict]) -> None:
    write_text(os.path.join(out, "suite.json"), json.dumps(rows, indent=1))


def cell(row: dict, key: str, form: str) -> str:
    """One table cell: a metric, the template's value over the fit's (``ratio:``: "1/x" means the
    fit's is x times smaller), or the fit's minus the template's (``delta:``); "-" when absent."""
    kind, _, name = key.rpartition(":")
    fit, template = row.get(name), row.get(f"template_{name}")
    if kind == "ratio":
        value = template / fit if fit and template is not None else None
    elif kind == "delta":
        value = fit - template if fit is not None and template is not None else None
    else:
        value = fit
    return "-" if value is None else form.format(value)


def markdown_table(rows: list[dict]) -> str:
    """``suite.md``: one line per case (a failed case shows its error), difficulty floors marked
    ``!`` where a case falls below docs/contracts.md's, and seconds per stage."""
    titles = ["case", "status", *(t for t, _, _ in TABLE), *(t for t, _, _, _ in DIFFICULTY), "minutes", "device"]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['name']} | failed: {row.get('error', '')} |" + " |" * (len(titles) - 2))
            continue
        difficulty = row.get("difficulty", {})
        floors = [("-" if difficulty.get(key) is None else form.format(difficulty[key] * scale)
                   + ("!" if difficulty[key] < DIFFICULTY_FLOORS[key] else "")) for _, key, scale, form in DIFFICULTY]
        minutes = sum(row.get("seconds", {}).values()) / 60
        lines.append("| " + " | ".join([row["name"], "ok", *(cell(row, k, f) for _, k, f in TABLE), *floors,
                                         f"{minutes:.1f}", str(row.get("device", ""))]) + " |")
    return "\n".join(lines) + "\n"


def write_suite_table(out: str, rows: list[dict]) -> None:
    legend = ("Chamfer x1e3 m^2 (whole garment); '1/x': the fit's Chamfer is x times smaller than the un-fitted "
              "template's (whole, seen and never-seen parts); NC: normal consistency; difficulty floors of "
              "docs/contracts.md section 7, '!' where the case is below one; minutes: generation + fit + outputs.\n\n")
    write_text(os.path.join(out, "suite.md"), legend + markdown_table(rows))


def case_pictures(row: dict, n_frames: int = 3, resolution: tuple[int, int] = (256, 256)) -> list[np.ndarray]:
    """A case's images for the contact sheet: ``n_frames`` renders (target | fit) spread over the
    sequence, and the middle frame's fit and truth from the front and from behind, coloured by
    error (:func:`ngdjax.mesh_views.side_by_side_views`)."""
    from ngdjax.mesh_views import side_by_side_views
    from ngdjax.render.backend import get_renderer

    renders = os.path.join(row["run_dir"], RENDERS)
    names = sorted(name for name in os.listdir(renders) if FRAME_RENDER.match(name)) if os.path.isdir(renders) else []
    pictures = [read_image(os.path.join(renders, names[i])) for i in np.linspace(0, len(names) - 1, n_frames).astype(int)
                ] if names else []
    frames = sorted(int(match.group(1)) for match in map(FRAME_MESH.match, os.listdir(os.path.join(row["run_dir"], MESHES)))
                    if match)
    middle = frames[len(frames) // 2]
    truth_path = os.path.join(row["sequence"], "gt_meshes", frame_name(middle, ".obj"))
    if os.path.isfile(truth_path):
        with np.load(os.path.join(row["sequence"], "camera.npz")) as camera:
            mv = np.asarray(camera["mv"], np.float64).reshape(-1, 4, 4)[0]
        fit_v, fit_f = read_mesh(mesh_path(row["run_dir"], middle))
        truth_v, truth_f = read_mesh(truth_path)
        pictures.append(side_by_side_views(get_renderer("jax"), fit_v, fit_f, truth_v, truth_f, up=mv[1, :3],
                                           forward=mv[2, :3], resolution=resolution))
    return pictures


def write_contact_sheet(out: str, rows: list[dict]) -> None:
    """``suite.png``: one row of :func:`case_pictures` per finished case."""
    from ngdjax.mesh_views import contact_sheet

    sheet = [(row["name"], case_pictures(row)) for row in rows if row["status"] == "ok"]
    if sheet:
        contact_sheet(sheet, os.path.join(out, "suite.png"))


# The quality targets every case of a suite is held to (docs/results.md, "The suites"): the fit's
# value over the template's for Chamfer (whole garment: 1/4 where the subject turns round, measured
# as at most TURNS_ROUND_UNSEEN of the truth never seen; 1/2.5 where more is never seen), the fit's
# minus the template's for the seen surface's normal consistency, the fit's own for mask IoU and
# PSNR (where the appearance stage ran).
TURNS_ROUND_UNSEEN = 0.1
TARGETS = (
    ("seen", lambda row: _ratio(row, "chamfer_seen_x1e3"), lambda value, row: value <= 1 / 6),
    ("whole", lambda row: _ratio(row, "chamfer_x1e3"),
     lambda value, row: value <= (1 / 4 if (row.get("unseen_fraction") or 0.0) <= TURNS_ROUND_UNSEEN else 1 / 2.5)),
    ("never seen", lambda row: _ratio(row, "chamfer_unseen_x1e3"), lambda value, row: value <= 0.6),
    ("NC seen", lambda row: _delta(row, "normal_consistency_seen"), lambda value, row: value >= 0.04),
    ("IoU", lambda row: row.get("mask_iou"), lambda value, row: value >= 0.96),
    ("PSNR", lambda row: row.get("psnr"), lambda value, row: value >= 28.0),
)


def _ratio(row: dict, name: str) -> float | None:
    fit, template = row.get(name), row.get(f"template_{name}")
    return fit / template if fit is not None and template else None


def _delta(row: dict, name: str) -> float | None:
    fit, template = row.get(name), row.get(f"template_{name}")
    return fit - template if fit is not None and template is not None else None


def missed_targets(row: dict) -> list[str]:
    """Names of the :data:`TARGETS` a finished case misses (a target whose metric is absent, such
    as the never-seen part of a subject that turns round, is not missed)."""
    missed = []
    for name, value_of, met in TARGETS:
        value = value_of(row)
        if value is not None and not met(value, row):
            missed.append(name)
    return missed


def comparison_table(variants: list[tuple[str, list[dict]]]) -> str:
    """Markdown: for each case, one line per variant (a label and its suite.json rows: e.g. the
    default, the method, one prior off) with the fit/template ratios ("1/x"), the seen surface's
    normal consistency gain, IoU and the targets missed; then one summary line per variant over the
    cases every variant finished, weighted equally (geometric mean of the ratios, mean NC gain)."""
    by_label = {label: {row["name"]: row for row in rows if row["status"] == "ok"} for label, rows in variants}
    names = [row["name"] for row in variants[0][1]]
    shared = [name for name in names if all(name in rows for rows in by_label.values())]
    lines = ["| case | variant | whole | seen | never seen | NC seen - template | IoU | targets missed |",
             "|---|---|---|---|---|---|---|---|"]
    inverse = lambda value: "-" if value is None else f"1/{1 / value:.2f}"  # noqa: E731
    for name in names:
        for label, rows in by_label.items():
            row = rows.get(name)
            if row is None:
                lines.append(f"| {name} | {label} | not finished |||||")
                continue
            lines.append(f"| {name} | {label} | {inverse(_ratio(row, 'chamfer_x1e3'))} | "
                         f"{inverse(_ratio(row, 'chamfer_seen_x1e3'))} | {inverse(_ratio(row, 'chamfer_unseen_x1e3'))}"
                         f" | {_delta(row, 'normal_consistency_seen'):+.3f} | {row['mask_iou']:.3f} | "
                         f"{', '.join(missed_targets(row)) or '-'} |")
    for label, rows in by_label.items():
        chosen = [rows[name] for name in shared]

        def mean(key: str) -> float | None:  # geometric mean of the ratios the cases have
            logs = [np.log(_ratio(r, key)) for r in chosen if _ratio(r, key)]
            return float(np.exp(np.mean(logs))) if logs else None
        lines.append(f"| **all {len(shared)} (equal weights)** | {label} | {inverse(mean('chamfer_x1e3'))} | "
                     f"{inverse(mean('chamfer_seen_x1e3'))} | {inverse(mean('chamfer_unseen_x1e3'))} | "
                     f"{np.mean([_delta(r, 'normal_consistency_seen') for r in chosen]):+.3f} | "
                     f"{np.mean([r['mask_iou'] for r in chosen]):.3f} | "
                     f"{sum(len(missed_targets(r)) for r in chosen)} missed |")
    return "\n".join(lines) + "\n"
