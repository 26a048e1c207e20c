"""sbirjax.search on one tiny Triplet-SN run (trained once) and one untrained MA-SBIR run on the
committed tiny CLIP: indexing, resume, the sketch formats, top-k, the grid and the error lines."""
import json
import os
import subprocess
import sys
import threading

import jax
import numpy as np
import PIL.Image
import pytest

from sbirjax import defaults_masbir, train
from sbirjax.data import augment, raster
from sbirjax.search import Index, Searcher, SearchError, cli, gallery, inputs, query
from tests import helpers

# Trains or builds a reference per module: the slow tier (pytest -m slow).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _photos(folder, n, size=24, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
    for i in range(n):
        sub = "sub/" if i % 4 == 0 else ""
        ext = ("png", "jpg", "jpeg")[i % 3]
        image = rng.integers(0, 255, (size + i, size, 3), dtype=np.uint8)
        PIL.Image.fromarray(image).save(os.path.join(folder, f"{sub}p{i:02d}.{ext}"))
    with open(os.path.join(folder, "broken.jpg"), "wb") as f:
        f.write(b"not a jpeg at all")
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("not an image, not listed")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny Triplet-SN run: 2 steps on 16 px images, no evaluation."""
    root = tmp_path_factory.mktemp("search")
    config = helpers.shrink(helpers.load_config("configs/synthetic_triplet.py"), str(root / "tfds"),
                            steps=2)
    with config.unlocked():
        config.data.image.size = 16
        config.eval.splits = {}
    workdir = str(root / "run")
    train.train_and_evaluate(config, workdir)
    return workdir


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return _photos(str(tmp_path_factory.mktemp("photos")), 20)


@pytest.fixture(scope="module")
def searcher(run):
    return Searcher.from_run(run, batch_size=8, log=lambda *_: None)


@pytest.fixture(scope="module")
def index_dir(searcher, photos, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("index") / "idx")
    searcher.index(photos, out)
    return out


@pytest.fixture(scope="module")
def strokes():
    """Two strokes well inside the 256 canvas, so every stroke format holds them unchanged."""
    t = np.linspace(0, 2 * np.pi, 30)
    ring = np.stack([128 + 80 * np.cos(t), 128 + 60 * np.sin(t)], 1)
    hook = np.array([[60.0, 200.0], [200.0, 210.0], [190.0, 40.5]])
    return inputs.to_sketchx([ring, hook])


def _sketch_files(folder, strokes):
    os.makedirs(folder, exist_ok=True)
    polylines = np.split(strokes[:, :2].astype(float), np.flatnonzero(strokes[:, 2])[:-1] + 1)
    files = {"npy": os.path.join(folder, "s.npy"), "ndjson": os.path.join(folder, "s.ndjson"),
             "svg": os.path.join(folder, "s.svg"), "png": os.path.join(folder, "s.png")}
    np.save(files["npy"], strokes)
    with open(files["ndjson"], "w") as f:
        f.write(json.dumps({"word": "other", "drawing": [[[0, 255], [0, 255]]]}) + "\n")
        f.write(json.dumps({"drawing": [[p[:, 0].tolist(), p[:, 1].tolist()]
                                        for p in polylines]}) + "\n")
    points = " ".join(f"{x!r},{y!r}" for x, y in polylines[0].tolist())
    (a, b), (c, d), (e, g) = polylines[1].tolist()
    with open(files["svg"], "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256" width="512">'
                f'<g><polyline points="{points}" fill="none"/></g>'
                f'<path d="M {a!r} {b!r} l {c - a!r} {d - b!r} L {e!r} {g!r}"/></svg>')
    PIL.Image.fromarray(raster.rasterize(strokes)).save(files["png"])
    return files


def test_index_skips_corrupt_files_and_numpy_reads_it(index_dir, photos, searcher):
    meta = json.load(open(os.path.join(index_dir, "index.json")))
    emb = np.load(os.path.join(index_dir, "embeddings.npy"))
    rows = [json.loads(line) for line in open(os.path.join(index_dir, "manifest.jsonl"))]
    skipped = [json.loads(line) for line in open(os.path.join(index_dir, "skipped.jsonl"))]
    assert emb.dtype == np.float32 and emb.shape == (20, meta["embedding_dim"]) == (20, 8)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    assert [s["path"] for s in skipped] == [os.path.join(photos, "broken.jpg")]
    assert skipped[0]["reason"]
    expected = sorted(os.path.join(r, f) for r, _, fs in os.walk(photos) for f in fs
                      if f[0] == "p")
    assert [r["path"] for r in rows] == expected
    for r in rows:
        with PIL.Image.open(r["path"]) as im:
            assert (r["width"], r["height"]) == im.size
        assert r["bytes"] == os.path.getsize(r["path"])
    assert meta["count"] == 20 and meta["similarity"] == "cosine"
    assert meta["method"] == "triplet_sn" and meta["step"] == searcher.step == 2
    assert meta["config_hash"] == searcher.config_hash and meta["image_size"] == 16
    # Row i is the run's photo embedding of file i, prepared as training prepares photos.
    image = augment.photo_image(
        {"image": np.asarray(PIL.Image.open(rows[3]["path"]).convert("RGB"))},
        searcher.config.data.image)
    one = searcher.method.embed(searcher.module, searcher.params, image[None], "photo")
    np.testing.assert_allclose(emb[3], np.asarray(one)[0], atol=1e-5)


def test_crash_mid_index_then_rerun_embeds_only_the_rest(searcher, photos, index_dir, tmp_path):
    out = str(tmp_path / "idx")
    embed, calls = searcher.embed_images, []

    def crashing(images, modality, **kw):
        calls.append(len(images))
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return embed(images, modality, **kw)

    searcher.embed_images = crashing
    try:
        with pytest.raises(RuntimeError, match="simulated crash"):
            searcher.index(photos, out, chunk_size=8)  # 21 files: batches of 8, 8, 5
    finally:
        del searcher.embed_images
    assert sorted(os.listdir(os.path.join(out, "chunks"))) == ["000000.jsonl", "000000.npy",
                                                               "model.json"]
    assert not os.path.exists(os.path.join(out, "index.json"))
    before = searcher.embed_calls["photo"]
    meta = searcher.index(photos, out, chunk_size=8)
    assert searcher.embed_calls["photo"] - before == 2  # the 13 files left (one unreadable)
    assert meta["count"] == 20
    np.testing.assert_allclose(np.load(os.path.join(out, "embeddings.npy")),
                               np.load(os.path.join(index_dir, "embeddings.npy")), atol=1e-6)
    assert open(os.path.join(out, "manifest.jsonl")).read() == \
        open(os.path.join(index_dir, "manifest.jsonl")).read()
    before = searcher.embed_calls["photo"]
    searcher.index(photos, out)  # nothing changed: nothing embedded
    assert searcher.embed_calls["photo"] == before


def _same_index(a, b):
    np.testing.assert_allclose(np.load(os.path.join(a, "embeddings.npy")),
                               np.load(os.path.join(b, "embeddings.npy")), atol=1e-6)
    for name in ("manifest.jsonl", "skipped.jsonl"):
        assert open(os.path.join(a, name)).read() == open(os.path.join(b, name)).read()


def test_shards_write_the_index_of_one_run(searcher, photos, index_dir, tmp_path):
    """Shard 0 started first waits for shard 1; the index equals the one-process index."""
    out = str(tmp_path / "sharded")
    first = {}
    thread = threading.Thread(target=lambda: first.update(
        meta=searcher.index(photos, out, chunk_size=8, shard=(0, 2), wait_s=120)))
    thread.start()
    other = searcher.index(photos, out, chunk_size=8, shard=(1, 2))
    thread.join(timeout=150)
    assert other["shard"] == [1, 2] and other["count"] == 10
    assert first["meta"]["count"] == 20 and first["meta"]["skipped"] == 1
    _same_index(out, index_dir)
    # Shard i embeds the photos i, i + 2, ... and writes chunk numbers congruent to i mod 2.
    order = [it.path for it in gallery.folder_items(photos)]
    folder = os.path.join(out, "chunks")
    chunks = [f for f in os.listdir(folder) if f[:6].isdigit() and f.endswith(".jsonl")]
    assert len(chunks) >= 2
    for name in chunks:
        rows = [json.loads(line) for line in open(os.path.join(folder, name))]
        assert {order.index(r["path"]) % 2 for r in rows} == {int(name[:6]) % 2}
    assert {"shard_0_of_2.json", "shard_1_of_2.json"} <= set(os.listdir(folder))


def test_missing_or_disagreeing_shards_are_clear_errors(searcher, photos, tmp_path):
    out = str(tmp_path / "alone")
    with pytest.raises(SearchError, match=r"shards \[1, 2\] of --shard=I/3 have not finished"):
        searcher.index(photos, out, shard=(0, 3), wait_s=0.2)
    with open(os.path.join(out, "chunks", "shard_1_of_3.json"), "w") as f:
        json.dump({"digest": "another folder", "count": 7, "skipped": []}, f)
    with pytest.raises(SearchError, match=r"shards \[1\] indexed another photo list"):
        searcher.index(photos, out, shard=(0, 3), wait_s=0.2)
    with pytest.raises(SearchError, match="--shard=3/2"):
        searcher.index(photos, out, shard=(3, 2))
    assert not os.path.exists(os.path.join(out, "index.json"))


@pytest.mark.slow  # two processes, each loading the run
def test_cli_shards_in_two_processes(run, photos, index_dir, tmp_path):
    out = str(tmp_path / "two")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "sbirjax.search", "index", f"--workdir={run}",
         f"--photos={photos}", f"--out={out}", f"--shard={i}/2", "--batch_size=4"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 0)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert "shard 1/2 done" in results[0][1] and "index of 20 photos" in results[1][1]
    _same_index(out, index_dir)


def test_stroke_formats_rank_as_the_training_rasterisation(searcher, index_dir, strokes, tmp_path):
    files = _sketch_files(str(tmp_path), strokes)
    for name in ("npy", "ndjson", "svg"):
        np.testing.assert_allclose(inputs.load_record(files[name], 256, line=1)["strokes"],
                                   strokes, atol=1e-4, err_msg=name)
    # The run's embed on the training rasterisation of the strokes, ranked by numpy.
    image = augment.sketch_image({"strokes": strokes}, searcher.config.data.image)
    q = np.asarray(searcher.method.embed(searcher.module, searcher.params, image[None],
                                         "sketch"))[0]
    gallery = np.load(os.path.join(index_dir, "embeddings.npy"))
    sims = gallery @ (q / np.linalg.norm(q))
    order = np.argsort(-sims, kind="stable")[:5]
    paths = Index.load(index_dir).paths
    for name in ("npy", "ndjson", "svg"):
        got = searcher.query(files[name], k=5, index=index_dir, line=1)
        assert [p for p, _, _ in got] == [paths[j] for j in order], name
        np.testing.assert_allclose([s for _, s, _ in got], sims[order], atol=1e-5)
        assert [r for _, _, r in got] == [1, 2, 3, 4, 5]
    got = searcher.query(strokes, k=5, index=index_dir)  # the API takes strokes as they are
    assert [p for p, _, _ in got] == [paths[j] for j in order]
    raster_results = searcher.query(files["png"], k=30, index=index_dir)  # k above N: all of them
    assert len(raster_results) == 20 and all(-1.0 <= s <= 1.0 + 1e-6 for _, s, _ in raster_results)


def test_top_k_equals_numpy(searcher, index_dir):
    rng = np.random.default_rng(1)
    q = query.normalize(rng.normal(size=(3, 8)))
    gallery = np.load(os.path.join(index_dir, "embeddings.npy"))
    scores, idx = query.top_k(q, jax.device_put(gallery), k=4)
    assert idx.devices() == set(jax.local_devices())  # the default backend: the accelerator if any
    sims = q @ gallery.T
    np.testing.assert_array_equal(np.asarray(idx), np.argsort(-sims, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(np.asarray(scores), np.sort(sims, axis=1)[:, ::-1][:, :4], atol=1e-6)
    results = searcher.search(q, 4, index_dir)
    assert [[r[0] for r in row] for row in results] == \
        [[Index.load(index_dir).paths[j] for j in row] for row in np.asarray(idx)]


def test_cli_query_json_grid_and_folder(index_dir, strokes, tmp_path, capsys):
    files = _sketch_files(str(tmp_path / "sketches"), strokes)
    grid = str(tmp_path / "grid.png")
    assert cli.run("query", index=index_dir, sketch=files["svg"], k=3, json_out=True,
                   grid=grid) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["results"]] == [1, 2, 3]
    with PIL.Image.open(grid) as im:
        assert im.size[0] == 4 * (query.TILE + 4) + 4
    with open(os.path.join(tmp_path / "sketches", "bad.svg"), "w") as f:
        f.write("<svg><path d='M 0 0 A 1 1 0 0 1 5 5'/></svg>")
    assert cli.run("query", index=index_dir, sketches=str(tmp_path / "sketches"), k=2) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [os.path.basename(r["sketch"]) for r in lines] == ["bad.svg", "s.ndjson", "s.npy",
                                                              "s.png", "s.svg"]
    assert "'A' is not supported" in lines[0]["error"]
    assert all(len(r["results"]) == 2 for r in lines[1:])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sbirjax.search", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_cli_errors_exit_2_in_one_line(run, index_dir, tmp_path):
    unknown = tmp_path / "s.xyz"
    unknown.write_text("?")
    cases = [(("index", f"--workdir={tmp_path}", f"--photos={tmp_path}", f"--out={tmp_path}/i"),
              "not an sbirjax run"),
             (("query", f"--index={index_dir}", f"--sketch={unknown}"), "unknown sketch format"),
             (("query", f"--index={index_dir}", f"--sketch={unknown}", "--k=0"), "--k=0")]
    for args, message in cases:
        p = _cli(*args)
        assert p.returncode == 2, p.stderr
        assert message in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_errors_through_the_command_function(run, index_dir, photos, strokes, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    np.save(tmp_path / "flat.npy", np.zeros((4, 2)))
    other = tmp_path / "other"
    os.makedirs(other)
    for name in ("embeddings.npy", "manifest.jsonl"):
        with open(os.path.join(index_dir, name), "rb") as src:
            (other / name).write_bytes(src.read())
    meta = json.load(open(os.path.join(index_dir, "index.json")))
    (other / "index.json").write_text(json.dumps({**meta, "config_hash": "0123456789abcdef"}))
    cases = [
        (dict(index=str(tmp_path / "missing"), sketch=str(bad)), "not a finished sbirjax index"),
        (dict(index=index_dir, sketch=str(bad)), "cannot read it as a .png sketch"),
        (dict(index=index_dir, sketch=str(tmp_path / "flat.npy")), "(N, 3)"),
        (dict(index=index_dir, sketch=str(tmp_path / "none.svg")), "no such sketch file"),
        (dict(index=index_dir, sketch=str(bad), k=-1), "--k=-1"),
        (dict(index=index_dir, sketch=str(tmp_path / "flat.npy"), text="a chair"),
         "--text needs an MA-SBIR run"),
    ]
    for options, message in cases:
        assert cli.run("query", **options) == 2, options
        err = capsys.readouterr().err
        assert message in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert cli.run("index", workdir=run, photos=str(tmp_path / "nope"),
                   out=str(tmp_path / "i")) == 2
    assert "no such folder" in capsys.readouterr().err
    # An index of another model is refused when a Searcher queries it.
    s = Searcher.from_run(run, batch_size=8, log=lambda *_: None)
    with pytest.raises(SearchError, match="built by another model"):
        s.query(strokes, k=3, index=str(other))
    with pytest.raises(SearchError, match="k=0"):
        s.query(strokes, k=0, index=index_dir)
    # An out folder holding another model's chunks is refused too.
    model = json.load(open(os.path.join(index_dir, "chunks", "model.json")))
    with open(os.path.join(index_dir, "chunks", "model.json"), "w") as f:
        json.dump({**model, "step": 99}, f)
    try:
        with pytest.raises(SearchError, match="embeddings of another model"):
            s.index(photos, index_dir)
    finally:
        with open(os.path.join(index_dir, "chunks", "model.json"), "w") as f:
            json.dump(model, f)


def test_svg_paths_and_quickdraw_frames():
    lines = inputs.path_polylines("m 10 10 l 5 0 h 3 v 2 z M 0 0 L 4 0 Q 4 4 8 4")
    np.testing.assert_allclose(lines[0], [[10, 10], [15, 10], [18, 10], [18, 12], [10, 10]])
    assert len(lines[1]) == 2 + inputs.BEZIER_SEGMENTS and tuple(lines[1][-1]) == (8, 4)
    with pytest.raises(ValueError, match="transform"):
        inputs.svg_strokes('<svg><g transform="scale(2)">'
                           '<line x1="0" y1="0" x2="1" y2="1"/></g></svg>')
    # No viewBox: the bounding box fills the canvas, then keeps a margin of 2.
    s, frame = inputs.svg_strokes('<svg><polyline points="10,10 30,20"/></svg>')
    fitted = inputs.fitted(s, frame, 256)
    assert fitted[:, :2].min() >= 2 and fitted[:, :2].max() <= 254
    # A raw QuickDraw drawing (coordinates past 255) is fitted the same way.
    s, frame = inputs.quickdraw_strokes([json.dumps({"drawing": [[[0, 1000], [0, 500]]]})], 0)
    assert frame is None
    np.testing.assert_allclose(inputs.fitted(s, frame, 256)[:, :2], [[2, 65], [254, 191]])


def test_masbir_text_query(photos, tmp_path):
    """An untrained MA-SBIR run on the tiny CLIP snapshot: text alone, and text with a sketch
    (the mean of the two unit vectors, renormalised)."""
    config = defaults_masbir.base(pretrained=helpers.CLIP_FIXTURE, image_size=32)
    with config.unlocked():
        config.total_steps = 0
        config.data.text.max_length = 16
    run = tmp_path / "masbir"
    os.makedirs(run)
    (run / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
    s = Searcher.from_run(str(run), batch_size=8, log=lambda *_: None)
    s.index(photos, str(tmp_path / "idx"))
    by_text = s.query(k=3, index=str(tmp_path / "idx"), text="a photo of a chair")
    assert [r for _, _, r in by_text] == [1, 2, 3]
    sketch = np.zeros((32, 32, 3), np.uint8) + 255
    both = s.query_vectors([sketch], ["a chair"])
    alone = s.query_vectors([sketch]), s.query_vectors(texts=["a chair"])
    expected = (alone[0] + alone[1]) / 2
    np.testing.assert_allclose(both, expected / np.linalg.norm(expected, axis=1, keepdims=True),
                               atol=1e-6)


def test_skimage_photos_rank_every_photo_once(searcher, strokes, tmp_path):
    """scikit-image's bundled photos: a query ranks the whole gallery, scores non-increasing."""
    import skimage.data
    names = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry")
    folder = tmp_path / "skimage"
    folder.mkdir()
    for name in names:
        PIL.Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.png")
    out = str(tmp_path / "idx")
    assert searcher.index(str(folder), out)["count"] == len(names)
    results = searcher.query(strokes, k=100, index=out)
    assert sorted(os.path.basename(p) for p, _, _ in results) == sorted(f"{n}.png" for n in names)
    assert [r for _, _, r in results] == list(range(1, len(names) + 1))
    scores = [s for _, s, _ in results]
    assert all(a >= b for a, b in zip(scores, scores[1:]))
