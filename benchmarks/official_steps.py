"""Time the official PyTorch training steps, for benchmarks/compare_official.py. One JSON line.

Runs in an environment with torch (for MA-SBIR also transformers 4.27.3 and PyYAML, the versions
the official code pins), never in sbirjax's: torch is not a dependency of sbirjax, and neither
official repository is part of it.

  TORCH_PYTHON benchmarks/official_steps.py --which=stylemeup --code=StyleMeUp/Code [--first_order]
  TORCH_PYTHON benchmarks/official_steps.py --which=masbir --code=MA-ZS-SBIR

stylemeup: one meta-step of the official main.py's training loop (lines 211-264): for each of
  --tasks tasks, clone the model, the inner `train(..., mode='reg', regulariser=...)`, adapt with
  SGD at fast_lr 5e-3, the outer `train(..., mode='no_reg')`, `meta_loss.backward()`; then the
  gradients scaled by 1 / tasks and both Adam steps (meta_lr 1e-4). The official Networks.py and
  main.py are imported as they are (256 px and latent 128 are hardcoded there, dropout as there).
  learn2learn does not build on Python 3.11: its MAML clone and adapt are written out in
  tests/fixtures/make_stylemeup_fixture.py (`clone_module`, `adapt`), second order unless
  --first_order (main.py forces first order with `hp.order = '1st'`).
masbir: the official `train.train_one_step` (forward of ModalAwareModel, every loss, backward,
  transformers' AdamW over the official parameter groups, the schedule) on one collated batch of
  --batch random 224 px images and captions (truncated to the official 30 tokens), float32
  (mixed precision off), a random CLIP with the shapes of openai/clip-vit-base-patch32
  (transformers' CLIPConfig defaults). Collation (the CLIPProcessor) is not timed.

Timing: --warmup untimed steps, then the median of --iters steps; torch threads = --threads.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

import host_memory  # benchmarks/, this script's folder: standard library only

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "tests", "fixtures")
sys.path.insert(0, FIXTURES)


def median_time(step, warmup: int, iters: int) -> dict:
    # benchmarks.common.time_calls's twin: common imports jax, which the torch interpreter lacks.
    for _ in range(warmup):
        step()
    reset = host_memory.reset_peak_rss()  # the peak RSS of the timed steps alone
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "iters": iters,
            "warmup": warmup,
            "steps_peak_rss_mb": host_memory.peak_rss_since_reset_mb() if reset else None}


def stylemeup_step(code: str, tasks: int, first_order: bool, seed: int = 0):
    import torch

    import make_stylemeup_fixture as official  # numpy-only helpers: loader, clone, adapt

    Networks, main = official.load_official(code)
    torch.manual_seed(seed)
    model, reg = Networks.VAE_Network(), Networks.Regulariser()
    main.tripletloss = torch.nn.TripletMarginLoss(margin=0.2)  # main.py defines it under __main__
    opt_model = torch.optim.Adam(model.parameters(), 1e-4)
    opt_reg = torch.optim.Adam(reg.parameters(), 1e-4)
    rng = np.random.default_rng(seed)
    image = lambda: torch.from_numpy(rng.uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32))
    data = [{k: image() for k in ("positive", "negative", "s1", "s2", "s3")} for _ in range(tasks)]

    def step():
        opt_model.zero_grad()
        opt_reg.zero_grad()
        for t in data:
            learner = official.clone_module(model)
            inner = main.train(learner, t["positive"], t["negative"], t["s1"], t["s2"],
                               mode="reg", regulariser=reg)
            official.adapt(learner, inner[-1], 5e-3, first_order, torch)
            outer = main.train(learner, t["positive"], t["negative"], t["s2"], t["s3"],
                               mode="no_reg")
            outer[-1].backward()
        for p in model.parameters():
            if p.grad is not None:
                p.grad.data.mul_(1.0 / tasks)
        opt_model.step()
        opt_reg.step()

    return step, {"tasks": tasks, "image_size": 256, "latent": 128,
                  "order": "first" if first_order else "second"}


def masbir_step(code: str, batch: int, seed: int = 0):
    import torch
    import transformers
    from PIL import Image

    import make_masbir_fixture as fixture  # its stubs and config reader

    warnings.filterwarnings("ignore", category=FutureWarning)  # AdamW's deprecation notice
    sys.path.insert(0, code)
    fixture.stub_unused_imports()
    from data.get_loader import CONCAT_DATASET
    from model.modeling_sbir import ModalAwareModel
    import train as official_train

    torch.manual_seed(seed)
    # A random CLIP saved where the official code loads its backbone from (605 MB): read into the
    # model and the processor by the time the batch is collated, then removed, failure or not.
    backbone = tempfile.mkdtemp(prefix="clip_b32_")
    try:
        transformers.CLIPModel(transformers.CLIPConfig()).save_pretrained(backbone)
        transformers.CLIPProcessor(
            image_processor=transformers.CLIPImageProcessor(
                size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
            tokenizer=transformers.CLIPTokenizer.from_pretrained(fixture.CLIP_TINY),
        ).save_pretrained(backbone)
        with open(os.path.join(code, "setting", "config-train.yaml")) as f:
            import yaml
            raw = yaml.safe_load(f)
        cfg = fixture.namespace(raw)
        cfg.model.backbone = backbone
        cfg.use_mixed_precision = False
        cfg.train.gradient_accumulation_steps = 1
        cfg.num_workers, cfg.pin_memory = 0, False
        collate = CONCAT_DATASET(cfg, ds_idx=[2])._collate_fn
        model = ModalAwareModel(cfg.model)
        rng = np.random.default_rng(seed)
        words = ("shoe", "chair", "sketch", "photo", "of", "a")
        examples = [{"text": " ".join(rng.choice(words, 40)),  # truncated to max_length (30)
                     "image": Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)),
                     "mod_idx": ([int(i % 2), int(2 + i % 2)],), "label": int(rng.integers(0, 100))}
                    for i in range(batch)]
        data = collate(examples)
    finally:
        shutil.rmtree(backbone, ignore_errors=True)
    optimizer, scheduler = official_train.get_optimizer_and_scheduler(cfg, model, 1000)
    model.train()
    counter = [0]

    def step():
        _, updated = official_train.train_one_step(cfg, model, data, optimizer, scheduler,
                                                   counter[0], "cpu", None)
        assert updated
        counter[0] += 1

    params = sum(p.numel() for p in model.parameters())
    return step, {"batch": batch, "image_size": 224, "tokens": int(data["input_ids"].shape[1]),
                  "parameters": params, "dtype": "float32"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", required=True, choices=("stylemeup", "masbir"))
    parser.add_argument("--code", required=True,
                        help="StyleMeUp: the repository's Code folder; MA-SBIR: the checkout")
    parser.add_argument("--first_order", action="store_true")
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.which == "stylemeup":
        step, setting = stylemeup_step(args.code, args.tasks, args.first_order)
    else:
        step, setting = masbir_step(args.code, args.batch)
    timing = median_time(step, args.warmup, args.iters)
    a = torch.randn(4096, 4096)
    mm = median_time(lambda: a @ a, 1, 3)["min_s"]
    timing["peak_rss_mb"] = host_memory.peak_host_rss_mb()
    print(json.dumps({"side": "official", "which": args.which, "setting": setting, **timing,
                      "matmul_gflops": 2 * 4096 ** 3 / mm / 1e9, "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "python": platform.python_version()}))


if __name__ == "__main__":
    main()
