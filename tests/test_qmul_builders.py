"""QMUL-ShoeV2 / ChairV2 builders on miniature copies in the release layout (fixtures_qmul.py)."""
import os
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from sbirjax import defaults
from sbirjax.data import splits, tfds_io
from tests import fixtures_qmul as fq
from tests import helpers
from tfds_builders import common, qmul_fg, safe_pickle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = {"shoev2": "ShoeV2", "chairv2": "ChairV2"}
# Written by hand from fq.SHOE / fq.CHAIR: photos with sketches k = 1, 2 and 3 all present.
THREE_SKETCH_PHOTOS = {
    "shoev2": {"train": {"2525993170", "2525993171", "2525993173"},
               "test": {"3061421001", "3061421003"}},
    "chairv2": {"train": {"CHABRA003GRY-UK_v1_PearlGrey", "CHAEME001BLK_v2_Black"},
                "test": {"CHAKIN002WHT-UK_v1_White", "CHANOR004_Natural"}},
}


def text(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def build(name, manual_dir, data_dir, *, skip_bad=False, log=lambda *_: None):
    cfg = defaults.base().data
    cfg.update({"name": name, "data_dir": str(data_dir), "skip_bad": skip_bad})
    builders = tfds_io.builders(cfg)
    for b in builders:
        tfds_io.prepare(b, str(manual_dir), log=log)
    return builders


def records(builder, split):
    src = builder.as_data_source(split=split)
    return [src[i] for i in range(len(src))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both datasets, built once: ShoeV2 from the release folder, ChairV2 from its own folder."""
    tmp = tmp_path_factory.mktemp("qmul")
    data_dir = tmp / "tfds"
    out = {}
    for name, folder in NAMES.items():
        written = fq.write(tmp / "manual", folder)
        manual = written.release if name == "shoev2" else written.root
        out[name] = (written, build(name, manual, data_dir))
    return out


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_sketch_matches_the_pickle(built, name):
    written, (sketch_b, _) = built[name]
    assert sketch_b.info.features["category"].names == [name[:-2]]  # 'shoe' / 'chair'
    for split in ("train", "test"):
        expected = {f"{p}_{k}": (p, k) for p, ks in written.spec[split].items() for k in ks}
        recs = records(sketch_b, split)
        assert len(recs) == len(expected)
        assert {text(r["sketch_id"]) for r in recs} == set(expected)
        for r in recs:
            photo_id, k = expected[text(r["sketch_id"])]
            assert text(r["photo_id"]) == photo_id
            assert int(r["user"]) == (int(k) if k.isdigit() else -1)
            assert int(r["category"]) == 0
            source = written.coords[f"/{split}/{photo_id}_{k}"]
            assert r["strokes"].dtype == np.float32
            np.testing.assert_array_equal(r["strokes"], source.astype(np.float32))


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_photo_decodes_to_the_png_written(built, name):
    written, (_, photo_b) = built[name]
    for split in ("train", "test"):
        recs = records(photo_b, split)
        assert sorted(text(r["photo_id"]) for r in recs) == sorted(written.spec[split])
        for r in recs:
            np.testing.assert_array_equal(r["image"], written.photos[text(r["photo_id"])])


@pytest.mark.parametrize("name", sorted(NAMES))
def test_three_sketch_splits(built, name):
    written, (sketch_b, photo_b) = built[name]
    for split in ("train", "test"):
        want = THREE_SKETCH_PHOTOS[name][split]
        recs = records(sketch_b, f"{split}_3sketch")
        assert sorted((text(r["photo_id"]), int(r["user"])) for r in recs) == sorted(
            (p, k) for p in want for k in (1, 2, 3))
        assert {text(r["photo_id"]) for r in records(photo_b, f"{split}_3sketch")} == want
        # Every split links each sketch to a photo of the matching photo split.
        for s in (split, f"{split}_3sketch"):
            loaded = splits.load(sketch_b, photo_b, s, s)
            assert np.all(loaded.sketch_photo >= 0)
            assert np.all(loaded.photo_ids[loaded.sketch_photo] == [
                text(r["photo_id"]) for r in records(sketch_b, s)])
    # Metadata is read without decoding images; the split's own sources still decode them.
    assert isinstance(splits._metadata_source(photo_b, "train")[0]["image"], bytes)
    assert loaded.photos[0]["image"].ndim == 3


def test_chair_ids_with_underscores_and_crowd_worker_suffix(built):
    _, (sketch_b, _) = built["chairv2"]
    recs = {text(r["sketch_id"]): r for r in records(sketch_b, "train")}
    r = recs["CHABRA003GRY-UK_v1_PearlGrey_A2NWM33YRH533Q"]
    assert text(r["photo_id"]) == "CHABRA003GRY-UK_v1_PearlGrey" and int(r["user"]) == -1
    assert text(recs["CHABRA003GRY-UK_v1_PearlGrey_3"]["photo_id"]) == (
        "CHABRA003GRY-UK_v1_PearlGrey")


def test_key_parsing_and_stroke_checks():
    assert qmul_fg.parse_key("/test/CHAKIN002WHT-UK_v1_White_12") == (
        "test", "CHAKIN002WHT-UK_v1_White_12", "CHAKIN002WHT-UK_v1_White", "12")
    assert qmul_fg.parse_key("/train/2525993170_1") == (
        "train", "2525993170_1", "2525993170", "1")
    for key in ("/val/2525993170_1", "/train/2525993170", "/train/a/b_1", "/train/_1", 7):
        with pytest.raises(ValueError):
            qmul_fg.parse_key(key)
    ok = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 1.0]])
    assert qmul_fg.check_strokes(ok).dtype == np.float32
    for bad, why in ((ok[:, :2], "shape"), (ok[:0], "empty"), (ok * [1, 1, 0.5], "pen"),
                     (np.where(ok == 2.0, np.inf, ok), "non-finite"), ([[1, 2, 1]], "numeric"),
                     (ok.astype(object), "numeric")):
        with pytest.raises(ValueError, match=why):
            qmul_fg.check_strokes(bad)


def test_manual_dir_may_be_the_release_its_parent_or_the_dataset_folder(built):
    written, (sketch_b, _) = built["shoev2"]
    for manual in (written.root, written.release, os.path.dirname(written.release)):
        assert sketch_b.check_manual_dir(manual) == written.root


def test_missing_folders_and_files_name_the_path(tmp_path):
    cfg = defaults.base().data
    cfg.update({"name": "shoev2", "data_dir": str(tmp_path / "tfds")})
    sketch_b, _ = tfds_io.builders(cfg)
    missing = str(tmp_path / "nowhere")
    with pytest.raises(common.DatasetLayoutError, match="nowhere") as e:
        tfds_io.prepare(sketch_b, missing)
    assert "SketchX_Shoe_ChairV2" in str(e.value) and "ShoeV2_Coordinate" in str(e.value)
    with pytest.raises(common.DatasetLayoutError, match="no manual directory"):
        tfds_io.prepare(sketch_b, "")
    # An existing folder without ShoeV2/ in it, then ShoeV2/ without its pickle.
    os.makedirs(tmp_path / "empty" / "ShoeV2" / "photo")
    with pytest.raises(common.DatasetLayoutError, match=r"ShoeV2_Coordinate"):
        tfds_io.prepare(sketch_b, str(tmp_path / "empty"))
    os.makedirs(tmp_path / "other")
    with pytest.raises(common.DatasetLayoutError, match=str(tmp_path / "other" / "ShoeV2")):
        tfds_io.prepare(sketch_b, str(tmp_path / "other"))
    # Without the check in prepare, the builder itself says the same.
    import tensorflow_datasets as tfds
    with pytest.raises(common.DatasetLayoutError, match="ShoeV2"):
        sketch_b.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "other")))
    assert not sketch_b.is_prepared()


def test_grey_and_rgba_photos_are_stored_as_rgb(tmp_path):
    w = fq.write(tmp_path / "manual", "ShoeV2")
    want = {}
    for photo_id, mode in (("2525993170", "L"), ("3061421002", "RGBA")):
        im = PIL.Image.fromarray(w.photos[photo_id]).convert(mode)
        im.save(w.photo_path(photo_id))
        want[photo_id] = np.asarray(im.convert("RGB"))
    _, photo_b = build("shoev2", w.release, tmp_path / "tfds")
    got = {text(r["photo_id"]): r["image"] for split in ("train", "test")
           for r in records(photo_b, split)}
    for photo_id, image in want.items():
        assert got[photo_id].shape == image.shape and got[photo_id].shape[2] == 3
        np.testing.assert_array_equal(got[photo_id], image)


def _broken(tmp_path, how):
    """A ShoeV2 fixture with one broken input; returns (written, path or key named, photo hit)."""
    w = fq.write(tmp_path / "manual", "ShoeV2")
    if how == "truncated_png":
        path = w.photo_path("2525993170")
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        return w, path, "2525993170"
    if how == "missing_photo":
        os.remove(w.photo_path("3061421001"))
        return w, w.photo_path("3061421001"), "3061421001"
    coords = dict(w.coords)
    key = "/train/2525993171_2"
    coords[key] = (np.zeros((0, 3)) if how == "empty_strokes"
                   else np.where(np.arange(3) == 0, np.nan, coords[key]))
    fq.rewrite_coords(w, coords)
    return w, key, None


BROKEN = {"truncated_png": "not a readable image", "missing_photo": "photo file missing",
          "empty_strokes": "empty stroke array", "nan_coordinates": "non-finite"}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_bad_records_stop_the_build_naming_them(tmp_path, how):
    w, where, _ = _broken(tmp_path, how)
    with pytest.raises(common.BadRecordError, match=BROKEN[how]) as e:
        build("shoev2", w.release, tmp_path / "tfds")
    assert where in str(e.value) and "skip_bad" in str(e.value)


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_bad_records_are_skipped_and_listed_with_skip_bad(tmp_path, how, capsys):
    w, where, photo = _broken(tmp_path, how)
    sketch_b, photo_b = build("shoev2", w.release, tmp_path / "tfds", skip_bad=True)
    assert sketch_b.builder_config.name == "sketches_skipbad"
    out = capsys.readouterr().out
    assert "skipping" in out and where in out and BROKEN[how] in out
    split = "test" if how == "missing_photo" else "train"
    ids = {text(r["sketch_id"]) for r in records(sketch_b, split)}
    photos = {text(r["photo_id"]) for r in records(photo_b, split)}
    expected = {f"{p}_{k}" for p, ks in w.spec[split].items() for k in ks}
    if photo is None:  # one sketch dropped, its photo kept
        dropped = {where.split("/")[-1]}
        assert photos == set(w.spec[split])
    else:  # the photo and every sketch of it dropped
        dropped = {f"{photo}_{k}" for k in w.spec[split][photo]}
        assert photos == set(w.spec[split]) - {photo}
    assert ids == expected - dropped
    # The 3-sketch filter runs after skipping: 2525993171 loses k=2, so it leaves train_3sketch.
    lost = {photo} if photo else {"2525993171"}
    three = {text(r["photo_id"]) for r in records(sketch_b, f"{split}_3sketch")}
    assert three == THREE_SKETCH_PHOTOS["shoev2"][split] - lost


class _Payload:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


PAYLOADS = {  # what the pickle names -> a payload that would create the marker file
    "posix.system": lambda m: _Payload(os.system, f"touch {m}"),
    "io.open": lambda m: _Payload(open, str(m), "w"),
    "builtins.exec": lambda m: _Payload(exec, f"open({str(m)!r}, 'w').close()"),
}


@pytest.mark.parametrize("refused", sorted(PAYLOADS))
def test_a_pickle_carrying_a_callable_is_refused_unrun(tmp_path, refused):
    marker = tmp_path / "marker"
    w = fq.write(tmp_path / "manual", "ShoeV2")
    coords = dict(w.coords, **{"/train/2525993170_9": PAYLOADS[refused](marker)})
    fq.rewrite_coords(w, coords)
    # The payload is live: a plain pickle.loads of it does create its file.
    pickle.loads(pickle.dumps(PAYLOADS[refused](tmp_path / "proof")))
    assert (tmp_path / "proof").exists()
    for skip_bad in (False, True):  # a tampered file is never "skipped"
        with pytest.raises(safe_pickle.RefusedGlobal, match=refused) as e:
            build("shoev2", w.release, tmp_path / "tfds", skip_bad=skip_bad)
        assert w.coordinate_file in str(e.value)
    assert not marker.exists()


def test_restricted_unpickler_reads_numpy_pickles_of_any_protocol_and_version():
    data = {"/train/1_1": np.arange(12, dtype=np.float64).reshape(4, 3),
            "/test/2_2": np.ones((1, 3), np.float32), "n": [1, 2.5, "x", (None, True)]}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        blob = pickle.dumps(data, protocol=protocol)
        variants = [blob]
        if protocol <= 3:  # text GLOBAL opcodes: also the NumPy 1.x module names
            variants.append(blob.replace(b"numpy._core.", b"numpy.core."))
        for b in variants:
            got = safe_pickle.loads(b)
            assert got.keys() == data.keys() and got["n"] == data["n"]
            for k in ("/train/1_1", "/test/2_2"):
                np.testing.assert_array_equal(got[k], data[k])
                assert got[k].dtype == data[k].dtype
    with pytest.raises(safe_pickle.RefusedGlobal, match="collections.OrderedDict"):
        safe_pickle.loads(pickle.dumps(__import__("collections").OrderedDict(a=1)))


@pytest.mark.slow
def test_cli_exit_codes_and_messages(tmp_path):
    env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
    missing = str(tmp_path / "not_downloaded")
    r = subprocess.run([sys.executable, "-m", "sbirjax.data.build", "chairv2",
                        f"--manual_dir={missing}"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert missing in r.stderr and "SketchX_Shoe_ChairV2" in r.stderr
    assert "ChairV2_Coordinate" in r.stderr and "Traceback" not in r.stderr
    # A build that skips one bad sketch succeeds and prints the counts of both configs.
    w = fq.write(tmp_path / "manual", "ChairV2")
    coords = dict(w.coords, **{"/test/CHANOR004_Natural_7": np.zeros((0, 3))})
    fq.rewrite_coords(w, coords)
    r = subprocess.run([sys.executable, "-m", "sbirjax.data.build", "chairv2",
                        f"--manual_dir={w.root}", "--skip_bad"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "skipping" in r.stdout and "CHANOR004_Natural_7" in r.stdout
    assert '"test": 9' in r.stdout and '"train_3sketch": 2' in r.stdout  # sketches; photos
    assert os.path.isdir(tmp_path / "tfds" / "chairv2" / "photos_skipbad")


def triplet_sn_config(manual_dir, data_dir):
    config = helpers.load_config(os.path.join(ROOT, "configs", "synthetic_triplet.py"))
    assert config.method == "triplet_sn"
    with config.unlocked():
        config.data.name = "shoev2"
        config.data.manual_dir = str(manual_dir)
        config.eval.splits = {"test": ("test", "test")}
    return helpers.shrink(config, str(data_dir), steps=2)


def test_training_stops_before_it_starts_without_the_download(tmp_path):
    from sbirjax import train
    config = triplet_sn_config(tmp_path / "not_downloaded", tmp_path / "tfds")
    with pytest.raises(common.DatasetLayoutError, match="not_downloaded") as e:
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert "How to get shoev2" in str(e.value)
    ckpts = tmp_path / "run" / "checkpoints"
    assert not os.path.exists(ckpts) or not os.listdir(ckpts)  # nothing trained, nothing saved


def test_triplet_sn_trains_on_the_shoev2_fixture(tmp_path):
    from sbirjax import train
    w = fq.write(tmp_path / "manual", "ShoeV2")
    config = triplet_sn_config(w.release, tmp_path / "tfds")
    state, results = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert int(state.step) == 2
    assert 0.0 <= results["test"]["acc@1"] <= results["test"]["acc@10"] <= 1.0
