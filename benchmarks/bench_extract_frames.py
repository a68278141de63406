"""Benchmark `slic extract-frames` against the official SLIC way of preparing frames.

Official way (rvl-lab-utoronto/video_similarity_search uses kenshohara-style scripts): one ffmpeg
process per video, `ffmpeg -i VIDEO -vf scale=... DIR/image_%05d.jpg`, ffmpeg's default JPEG
quality and threads, here 2 (--workers) such processes at a time. The scale expression is
slic's own (short side 128, aspect kept, even sizes), so both sides make frames of the same
size, with the same ffmpeg binary (slic is pointed at it through SLIC_FFMPEG).

Measured side by side, in alternating order, after one untimed warm-up of each:
  * wall time of the official way (all ffmpeg processes) and of `slic extract-frames`
    (the subprocess, start-up included; the summary's own "seconds" is shown too),
  * size of the JPEG folders (apparent bytes like `du -sb`, allocated like `du -sk`) and of
    frames.h5,
  * frames.h5 size of each storage variant the installed slic offers (OpenCV-encoded slic:
    JPEG quality 75 / 90, raw, png; ffmpeg-encoded slic: -q:v 2 / 4 / 8 / unset, raw), with the
    single-thread decode time per frame of each (and of the official JPEG files), and PSNR
    against raw,
  * the CPU time other processes used during each timed run (0 = undisturbed).

Usage (from the repository root):
    python benchmarks/bench_extract_frames.py [--real-clips DIR] [--synthetic DIR] [--runs 3]
To measure another slic version without touching the checkout, put a snapshot of it first on
PYTHONPATH (`git archive <commit> stages slic_cli | tar -x -C DIR`, then PYTHONPATH=DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ForeignCpu,
    default_real_clips,
    disk_usage,
    ffmpeg_binary,
    fmt_runs,
    machine_info,
    make_synthetic,
    median,
    prepare_folder_input,
    print_machine,
    run_slic,
    table,
)

from stages.datasets import list_dataset  # noqa: E402
from stages.io.artifacts import open_artifact, read_encoded_images, read_video_table  # noqa: E402

SHORT_SIDE = 128


def codec_variants() -> list[tuple[str, list[str]]]:
    """(label, extra slic arguments) of the frames.h5 variants this slic version offers; the
    default one has no extra arguments. Older slic encoded with OpenCV (jpeg_quality, png),
    newer lets ffmpeg encode (jpeg_qscale = ffmpeg's -q:v, null = ffmpeg's default)."""
    from dataclasses import fields

    from stages.extract_frames import ExtractFramesConfig

    names = {f.name: f for f in fields(ExtractFramesConfig)}
    codec_field = names["codec"]
    choices = codec_field.metadata.get("choices") or ()
    variants: list[tuple[str, list[str]]] = []
    if "jpeg_quality" in names:
        default = names["jpeg_quality"].default
        for quality in sorted({75, 90, default}):
            extra = [] if quality == default else [
                "--set", f"extract_frames.jpeg_quality={quality}"]
            label = f"jpeg quality {quality}" + (" (default)" if not extra else "")
            variants.append((label, extra))
    elif "jpeg_qscale" in names:
        default = names["jpeg_qscale"].default
        for qscale in dict.fromkeys((2, default, 8, None)):
            extra = [] if qscale == default else [
                "--set", f"extract_frames.jpeg_qscale={'null' if qscale is None else qscale}"]
            label = ("jpeg -q:v " + (str(qscale) if qscale is not None
                                     else "unset (ffmpeg default rate control)")
                     + (" (default)" if not extra else ""))
            variants.append((label, extra))
    variants.append(("raw", ["--codec", "raw"]))
    if not choices or "png" in choices:
        variants.append(("png", ["--codec", "png"]))
    return variants


def official_extract(ffmpeg: str, root: Path, relpaths: list[str], out: Path, workers: int,
                     threads: int | None) -> float:
    """The official way; returns its wall time. `out` must not exist."""
    scale = (f"scale=if(gt(iw\\,ih)\\,-2\\,{SHORT_SIDE}):"
             f"if(gt(iw\\,ih)\\,{SHORT_SIDE}\\,-2)")

    def one(relpath: str) -> None:
        folder = out / Path(relpath).with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        command = [ffmpeg, "-nostdin", "-i", str(root / relpath), "-vf", scale]
        if threads:
            command += ["-threads", str(threads)]
        command.append(str(folder / "image_%05d.jpg"))
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, relpaths))
    return time.perf_counter() - started


def slic_extract(root: Path, workspace: Path, workers: int, extra: list[str],
                 env: dict[str, str]) -> tuple[float, dict]:
    return run_slic(["extract-frames", "--dataset", "folder", "--root", str(root),
                     "--workspace", str(workspace), "--workers", str(workers), "--force",
                     "--quiet", "--json", *extra], env=env)


def pick_videos(num_images: np.ndarray, cap: int) -> list[int]:
    """Indices of videos spread over the set whose frames add up to about `cap`."""
    total = int(num_images.sum())
    if total <= cap:
        return list(range(len(num_images)))
    stride = max(1, int(round(total / cap)))
    chosen = list(range(0, len(num_images), stride))
    return chosen


def decode_benchmark(frames_h5: Path, chosen: list[int], repeats: int,
                     official: Path | None = None) -> dict:
    """Single-thread decode times per frame (µs): of pre-read bytes, in color and gray, and
    read-from-HDF5-plus-decode; for `official`, cv2.imdecode of pre-read bytes and cv2.imread."""
    cv2.setNumThreads(1)
    with open_artifact(frames_h5, "frames") as h5:
        t = read_video_table(h5)
        codec = str(h5["images"].attrs["codec"])
        videos = [(int(t.columns["first_image"][i]), int(t.columns["num_images"][i]),
                   int(t.columns["height"][i]), int(t.columns["width"][i]),
                   t.columns["relpath"][i]) for i in chosen]
        encoded = [read_encoded_images(h5, "images", f, n) for f, n, _, _, _ in videos]
        count = sum(len(e) for e in encoded)

        def color_all(keep: bool = False) -> list:
            out = []
            for (_, _, h, w, _), images in zip(videos, encoded):
                for e in images:
                    if codec == "raw":
                        image = np.frombuffer(e, np.uint8).reshape(h, w, 3)
                    else:
                        image = cv2.imdecode(e, cv2.IMREAD_COLOR)
                    if keep:
                        out.append(image)
            return out

        def gray_all() -> None:
            for (_, _, h, w, _), images in zip(videos, encoded):
                for e in images:
                    if codec == "raw":
                        cv2.cvtColor(e.reshape(h, w, 3), cv2.COLOR_RGB2GRAY)
                    else:
                        cv2.imdecode(e, cv2.IMREAD_GRAYSCALE)

        def read_and_color() -> None:
            for f, n, h, w, _ in videos:
                for e in read_encoded_images(h5, "images", f, n):
                    if codec == "raw":
                        np.frombuffer(e, np.uint8).reshape(h, w, 3)
                    else:
                        cv2.imdecode(e, cv2.IMREAD_COLOR)

        result = {"codec": codec, "frames": count}
        for name, fn in (("color", color_all), ("gray", gray_all), ("read_color", read_and_color)):
            fn()  # warm-up, untimed
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
            result[name] = median(times) / count * 1e6
        decoded = color_all(keep=True)
        result["bytes_per_frame"] = int(h5["images/data"].shape[0]) / int(
            h5["images/offsets"].shape[0] - 1)
    result["decoded"] = decoded  # BGR for jpeg/png, RGB for raw
    result["shapes"] = [(n, h, w) for _, n, h, w, _ in videos]
    if official is not None:
        files = []
        for _, n, _, _, relpath in videos:
            folder = official / Path(relpath).with_suffix("")
            files.extend(sorted(folder.glob("image_*.jpg"))[:n])
        blobs = [np.fromfile(p, np.uint8) for p in files]
        dec, rd = [], []
        for b in blobs:  # warm-up, untimed
            cv2.imdecode(b, cv2.IMREAD_COLOR)
        for _ in range(repeats):
            started = time.perf_counter()
            for b in blobs:
                cv2.imdecode(b, cv2.IMREAD_COLOR)
            dec.append(time.perf_counter() - started)
            started = time.perf_counter()
            for p in files:
                cv2.imread(str(p), cv2.IMREAD_COLOR)
            rd.append(time.perf_counter() - started)
        result["official"] = {
            "frames": len(files), "color": median(dec) / len(files) * 1e6,
            "read_color": median(rd) / len(files) * 1e6,
            "decoded": [cv2.imdecode(b, cv2.IMREAD_COLOR) for b in blobs],
            "bytes_per_frame": sum(len(b) for b in blobs) / len(blobs),
        }
    return result


def psnr(reference_rgb: list[np.ndarray], test_bgr: list[np.ndarray]) -> float:
    """PSNR over all frames together (one MSE); `test_bgr` is compared to the RGB reference."""
    squared, values = 0.0, 0
    for ref, img in zip(reference_rgb, test_bgr):
        if img is None or img.shape != ref.shape:
            continue
        diff = ref.astype(np.float32) - img[..., ::-1].astype(np.float32)
        squared += float(np.square(diff).sum())
        values += diff.size
    if not values:
        return float("nan")
    mse = squared / values
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def bench_input(name: str, root: Path, work: Path, args, ffmpeg: str, env: dict) -> None:
    listing = list_dataset("folder", root)
    relpaths = [v.relpath for v in listing.videos]
    # Every run writes into a fresh folder and nothing is deleted until the script ends: on a
    # file system mounted with online discard (ext4 -o discard here), deleting thousands of
    # files just before a run slows the next runs' writes (measured: 4.7 s -> 8.9 s).
    counter = iter(range(10**6))
    foreign: dict[str, list[float]] = defaultdict(list)  # CPU s used by other processes
    official_out = work

    def run_official() -> float:
        nonlocal official_out
        official_out = work / f"official_{name}_{next(counter)}"
        subprocess.run(["sync"], check=False)
        with ForeignCpu() as other:
            wall = official_extract(ffmpeg, root, relpaths, official_out, args.workers,
                                    args.official_threads)
        foreign["official"].append(other.seconds)
        return wall

    def run_ours(extra: list[str], tag: str = "") -> tuple[float, dict, Path]:
        ws = work / f"ws_{name}{tag}_{next(counter)}"
        subprocess.run(["sync"], check=False)
        with ForeignCpu() as other:
            wall, summary = slic_extract(root, ws, args.workers, extra, env)
        foreign["slic" + tag].append(other.seconds)
        return wall, summary, ws / "folder" / "frames.h5"

    print(f"\n## {name}: {len(relpaths)} videos under {root}", flush=True)
    run_official()  # warm-up: page cache, ffmpeg binary
    run_ours([])
    foreign.clear()  # drop the warm-ups
    official_walls, slic_walls, slic_inner = [], [], []
    summary: dict = {}
    frames_h5 = work
    for run in range(args.runs):
        order = ("official", "slic") if run % 2 == 0 else ("slic", "official")
        for which in order:
            if which == "official":
                official_walls.append(run_official())
            else:
                wall, summary, frames_h5 = run_ours([])
                slic_walls.append(wall)
                slic_inner.append(summary["seconds"])
        print(f"  run {run + 1}: official {official_walls[-1]:.2f}s, slic {slic_walls[-1]:.2f}s"
              f" (CPU used by other processes meanwhile: {foreign['official'][-1]:.2f}s, "
              f"{foreign['slic'][-1]:.2f}s)", flush=True)

    official_frames = sum(1 for _ in official_out.rglob("image_*.jpg"))
    official_apparent, official_disk = disk_usage(official_out)
    jpg_bytes = sum(p.stat().st_size for p in official_out.rglob("image_*.jpg"))
    slic_frames = summary["num_images"]
    h5_stat = frames_h5.stat()
    h5_apparent, h5_disk = h5_stat.st_size, h5_stat.st_blocks * 512
    o_wall, s_wall = median(official_walls), median(slic_walls)
    videos = len(relpaths)
    rows = [
        ["official (ffmpeg -> JPEG files)", fmt_runs(official_walls), f"{o_wall:.2f}",
         f"{official_frames / o_wall:.0f}", f"{videos / o_wall:.1f}", official_frames,
         f"{official_apparent:,}", f"{official_disk:,}", f"{jpg_bytes / official_frames:.0f}"],
        ["slic extract-frames", fmt_runs(slic_walls), f"{s_wall:.2f}",
         f"{slic_frames / s_wall:.0f}", f"{videos / s_wall:.1f}", slic_frames,
         f"{h5_apparent:,}", f"{h5_disk:,}", f"{summary['bytes'] / slic_frames:.0f}"],
    ]
    print(table(["method", "wall runs (s)", "median wall (s)", "frames/s", "videos/s",
                 "frames", "size apparent (B)", "size on disk (B)", "image bytes/frame"], rows))
    print(f"\nCPU seconds used by other processes during the timed runs: official "
          f"{fmt_runs(foreign['official'])}, slic {fmt_runs(foreign['slic'])}")
    print(f"slic summary 'seconds' (in-process, no start-up): {fmt_runs(slic_inner)} "
          f"-> median {median(slic_inner):.2f}s")
    print(f"ratio slic/official throughput (frames/s): "
          f"{(slic_frames / s_wall) / (official_frames / o_wall):.2f}")
    print(f"ratio slic/official size: apparent {h5_apparent / official_apparent:.2f}, "
          f"on disk {h5_disk / official_disk:.2f}")
    if official_frames != slic_frames:
        print(f"WARNING: frame counts differ: official {official_frames}, slic {slic_frames}")

    # Codec variants: size, extraction time, decode time, PSNR against raw.
    variant_rows, decoded = [], {}
    with open_artifact(frames_h5, "frames") as h5:
        chosen = pick_videos(read_video_table(h5).columns["num_images"], args.decode_frames)
    variants = codec_variants()
    default_label = next(label for label, extra in variants if not extra)
    for index, (label, extra) in enumerate(variants):
        if not extra:
            path, walls = frames_h5, slic_walls
        else:
            walls = []
            for _ in range(args.variant_runs):
                wall, _, path = run_ours(extra, f"_variant{index}")
                walls.append(wall)
            print(f"  {label}: extract walls {fmt_runs(walls)} (other processes' CPU "
                  f"{fmt_runs(foreign['slic_variant' + str(index)])}s)", flush=True)
        stat = path.stat()
        result = decode_benchmark(path, chosen, args.runs,
                                  official_out if label == default_label else None)
        decoded[label] = result
        variant_rows.append([label, f"{median(walls):.2f}", f"{stat.st_size:,}",
                             f"{stat.st_blocks * 512:,}", f"{result['bytes_per_frame']:.0f}",
                             f"{result['color']:.1f}", f"{result['gray']:.1f}",
                             f"{result['read_color']:.1f}", label])
    reference = decoded["raw"]["decoded"]
    for row in variant_rows:
        label = row.pop()
        row.append("ref" if label == "raw" else f"{psnr(reference, decoded[label]['decoded']):.1f}")
    off = decoded[default_label]["official"]
    variant_rows.append(["official JPEG files (ffmpeg default q)", f"{o_wall:.2f}",
                         f"{official_apparent:,}", f"{official_disk:,}",
                         f"{off['bytes_per_frame']:.0f}", f"{off['color']:.1f}", "-",
                         f"{off['read_color']:.1f} (imread)",
                         f"{psnr(reference, off['decoded']):.1f}"])
    print(f"\nframes.h5 by codec ({len(chosen)} videos, {decoded['raw']['frames']} frames for "
          f"decode/PSNR; decode = median of {args.runs}, 1 thread, µs per frame)")
    print(table(["codec", "extract wall (s)", "file bytes", "on disk (B)", "bytes/frame",
                 "decode color", "decode gray", "h5 read + decode color", "PSNR vs raw (dB)"],
                variant_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-clips", type=Path, default=default_real_clips(),
                        help="<class>/<video> tree, or <dataset>/<class>/<video> collection "
                             "(default: ../shared/data/real-clips from the repository root)")
    parser.add_argument("--synthetic", type=Path, default=None,
                        help="a synthetic set (default: made with `slic make-dataset synthetic`)")
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--variant-runs", type=int, default=3,
                        help="timed extraction runs of each extra codec variant")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--official-threads", type=int, default=None,
                        help="-threads for the official ffmpeg (default: ffmpeg's own)")
    parser.add_argument("--decode-frames", type=int, default=4000,
                        help="about this many frames (whole videos) for decode timing and PSNR")
    parser.add_argument("--ffmpeg", default=None, help="ffmpeg binary (default: imageio-ffmpeg's)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    ffmpeg = ffmpeg_binary(args.ffmpeg)
    env = dict(os.environ, SLIC_FFMPEG=ffmpeg)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_extract_"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print("# bench_extract_frames")
    print("command: " + " ".join([Path(sys.executable).name] + sys.argv))
    print_machine(info)
    print(f"ffmpeg: {ffmpeg}")
    print(subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout
          .splitlines()[0])
    try:
        inputs = []
        if not args.no_real:
            inputs.append(("real-clips", prepare_folder_input(args.real_clips, work / "real")))
        if not args.no_synthetic:
            syn = args.synthetic or make_synthetic(work / "synthetic")
            inputs.append(("synthetic", prepare_folder_input(syn, work / "synthetic_links")))
        for name, root in inputs:
            bench_input(name, root, work, args, ffmpeg, env)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
