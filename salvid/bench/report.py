"""The benchmark's targets beside the measured figures (reported, never asserted) and its one table."""

from __future__ import annotations

from typing import Any

E2E_FPS_GOAL = 30.0  # frames/s of predict end to end with PNG maps, for the pretrained-encoder family
E2E_OVER_BARE_GOAL = 1.2
PEAK_FRACTION_GOAL = 0.5
LOADER_OVER_TRAIN_GOAL = 3.0
RSS_GROWTH_GOAL = 1.1
EVALUATE_SECONDS_GOAL = 90.0  # evaluate of the default model on DAVIS-2016 val's size, network only, 2-core CPU


def _layout(row: dict[str, Any]) -> str:
    layout = ("channels_last" if row["channels_last"] else "contiguous") + (" compiled" if row.get("compiled") else "")
    return layout if row.get("backend", "torch") == "torch" else row["backend"]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(target: str, measured: float, goal: float, at_least: bool) -> None:
        out.append({"target": target, "measured": measured, "goal": goal,
                    "met": measured >= goal if at_least else measured <= goal})

    models = results.get("model", {}).get("models", {})
    for name, model in models.items():
        if not model["encodes_frames"]:  # 3D convolutions throughout: judged by the fraction of peak
            fast = max((r for r in model["forward"] if not r["compiled"]), key=lambda r: r["rate"])
            add(f"{name} inference >= {PEAK_FRACTION_GOAL:.0%} of peak ({fast['precision']}, {_layout(fast)})",
                fast["fraction_of_peak"], PEAK_FRACTION_GOAL, True)
    if models and "loader" in results:
        slowest = min(r["samples_per_s"] for r in results["loader"]["rows"] if r["workers"] > 0)
        fastest_train = max(max(r["rate"] for r in m["train"]) for m in models.values())
        results["loader"]["vs_fastest_train_step"] = slowest / fastest_train
        add(f"loader (N workers, slowest source) >= {LOADER_OVER_TRAIN_GOAL:.0f}x fastest train step",
            slowest / fastest_train, LOADER_OVER_TRAIN_GOAL, True)
    e2e = results.get("e2e")
    if e2e:
        for name, model in e2e["models"].items():
            run = model["1x"]
            if model["encodes_frames"]:
                add(f"{name} predict >= {E2E_FPS_GOAL:.0f} frames/s ({e2e['video']}, {e2e['outputs']})",
                    run["fps"], E2E_FPS_GOAL, True)
            add(f"{name} predict within {E2E_OVER_BARE_GOAL}x of its bare forward", run["e2e_over_bare"],
                E2E_OVER_BARE_GOAL, False)
        if "rss_growth_2x" in e2e:
            add(f"{e2e['rss_model']} predict peak RSS flat in video length (2x frames / 1x)", e2e["rss_growth_2x"],
                RSS_GROWTH_GOAL, False)
    ev = results.get("evaluate")
    if ev and not results.get("quick"):  # the goal is for the full size only
        add(f"evaluate {ev['model']} on {ev['frames']} frames at {ev['video']} (network only) <= "
            f"{EVALUATE_SECONDS_GOAL:.0f} s", ev["seconds"], EVALUATE_SECONDS_GOAL, False)
    return out


def table(results: dict[str, Any]):
    from rich.table import Table

    m = results["machine"]
    t = Table(title=f"salvid bench: {m['hardware']}, torch {m['torch']} ({m['torch_threads']} threads), "
                    f"on {m['device']}")
    for col, justify in (("section", "left"), ("case", "left"), ("value", "right"), ("unit", "left"),
                         ("note", "left")):
        t.add_column(col, justify=justify)
    for precision, g in results["peak"].items():
        t.add_row("peak", f"matmul {precision}", f"{g:.0f}", "GFLOP/s", "")
    for name, model in results.get("model", {}).get("models", {}).items():
        size = "x".join(map(str, model["input_size"]))
        t.add_row("model", f"{name} {size} FLOPs", f"{model['gflop_per_frame']:.2f}", "GFLOP/frame",
                  f"train {model['gflop_per_train_sample']:.1f}")
        for kind, unit in (("forward", "frames/s"), ("train", "samples/s")):
            for r in model[kind]:
                t.add_row("model", f"{name} {kind} {r['precision']} {_layout(r)}", f"{r['rate']:.2f}", unit,
                          f"{100 * r['fraction_of_peak']:.0f}% of peak, first call {r['first_call_s']:.1f}s")
    cap = results.get("model", {}).get("isa_cap")
    if cap:
        for key, ratio in cap["uncapped_over_capped"].items():
            t.add_row("isa cap", f"{cap['model']} {key}", f"{ratio:.2f}", "x uncapped/capped",
                      f"{cap['uncapped'][key]:.1f} vs {cap['capped'][key]:.1f}")
    for r in results.get("loader", {}).get("rows", []):
        t.add_row("loader", f"{r['source']}, {r['workers']} workers", f"{r['samples_per_s']:.1f}", "samples/s", "")
    e2e = results.get("e2e")
    for name, model in (e2e or {}).get("models", {}).items():
        for k, r in model.items():
            if not isinstance(r, dict) or "fps" not in r:
                continue
            setting = "auto: " if k in ("1x", "2x") else ""
            note = f"{setting}{r.get('backend', 'torch')} {r['precision']}"
            if "bare_fps" in r:
                note += f"; bare forward {r['bare_fps']:.1f} frames/s, ratio {r['e2e_over_bare']:.2f}"
            if "stages_s" in r:
                note += "; s: " + " ".join(f"{stage} {sec:.1f}" for stage, sec in r["stages_s"].items())
            t.add_row("e2e", f"{name} {e2e['video']} -> {e2e['outputs']}, {r['frames']} frames", f"{r['fps']:.2f}",
                      "frames/s", note)
            if k in ("1x", "2x"):
                t.add_row("e2e", f"{name} peak RSS, {r['frames']} frames", f"{r['peak_rss_mb']:.0f}", "MB", "")
    ev = results.get("evaluate")
    if ev:
        scores = ev["sanity_scores"]
        t.add_row("evaluate", f"{ev['method']} {ev['video']}, network only, {ev['frames']} frames in "
                              f"{ev['sequences']} sequences", f"{ev['seconds']:.1f}", "s",
                  f"{ev['fps']:.1f} frames/s, {ev['backend']} {ev['precision']}, peak RSS {ev['peak_rss_mb']:.0f} MB; "
                  f"sanity: PLCC {scores['plcc']:.3f}, S {scores['smeasure']:.3f}")
    if "metrics" in results:
        r = results["metrics"]
        if "error" in r:
            t.add_row("metrics", "unavailable", "", "", r["error"])
        else:
            t.add_row("metrics", "salvid SaliencyMetrics", f"{r['salvid_fps']:.1f}", "frames/s",
                      f"{r['size'][1]}x{r['size'][0]}")
            t.add_row("metrics", "sklearn + pysodmetrics", f"{r['reference_fps']:.1f}", "frames/s",
                      f"max |diff| {r['max_abs_difference']:.1e}")
    for tg in results.get("targets", []):
        t.add_row("target", tg["target"], f"{tg['measured']:.2f}", f"goal {tg['goal']}",
                  "met" if tg["met"] else "NOT met")
    return t
