"""Sketchy, TU-Berlin and QuickDraw-extended builders, built from miniature copies of the releases.

Every record of every split is compared with the file it came from (ids, normalised class, link,
user, decoded pixels); split membership is recomputed from the fixture and the published class
lists; bad inputs (missing folder, truncated JPEG / PNG, sketch without photo, unmatched photo
folder) must fail or be reported naming the file.
"""
import contextlib
import importlib
import io
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sbirjax import defaults
from sbirjax.data import splits as splits_lib
from sbirjax.data import tfds_io
from tests import fixtures_category as fx
from tfds_builders import category_sbir as cs
from tfds_builders import class_lists, common
from tfds_builders.class_lists import normalise_class

tfds.disable_progress_bar()

BUILDERS = {"sketchy": cs.Sketchy, "tuberlin": cs.Tuberlin, "quickdraw": cs.Quickdraw}
DSH_SMALL = {"sketchy": 2, "tuberlin": 1}     # query sketches per class on the fixture's scale
ZS_LISTS = {  # dataset -> split prefix -> unseen classes
    "sketchy": {"zs1": class_lists.SKETCHY_ZS1_UNSEEN, "zs2": class_lists.SKETCHY_ZS2_UNSEEN},
    "tuberlin": {"zs": class_lists.TUBERLIN_ZS_UNSEEN,
                 "zs_mas": class_lists.TUBERLIN_MASBIR_UNSEEN},
    "quickdraw": {"zs": class_lists.QUICKDRAW_UNSEEN},
}
GZS = {"sketchy": {"gzs2_gallery": "zs2"},
       "tuberlin": {"gzs_gallery": "zs", "gzs_mas_gallery": "zs_mas"},
       "quickdraw": {"gzs_gallery": "zs"}}


def build(name, config, manual_dir, data_dir):
    """Build one config; returns (builder, everything it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        b = BUILDERS[name](config=config, data_dir=str(data_dir), file_format="array_record")
        b.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return b, out.getvalue()


def _text(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def read(builder, split) -> dict:
    """id -> record (text decoded, category as its name) of one split."""
    ds = builder.as_data_source(split=split)
    names = builder.info.features["category"].names
    out = {}
    for i in range(len(ds)):
        r = dict(ds[i])
        for k in ("sketch_id", "photo_id"):
            if k in r:
                r[k] = _text(r[k])
        r["category"] = names[int(r["category"])]
        key = r["sketch_id"] if "sketch_id" in r else r["photo_id"]
        assert key not in out, f"{split}: duplicate id {key}"
        out[key] = r
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each dataset's fixture, both configs built, with small DSH hold-outs."""
    mp = pytest.MonkeyPatch()
    mp.setattr(cs, "DSH_QUERIES_PER_CLASS", DSH_SMALL)
    out = {}
    for name, write in fx.WRITERS.items():
        tmp = tmp_path_factory.mktemp(name)
        written = write(str(tmp / "src"))
        sk, log_sk = build(name, "sketches", tmp / "src", tmp / "data")
        ph, log_ph = build(name, "photos", tmp / "src", tmp / "data")
        out[name] = dict(written=written, sketches=sk, photos=ph, log=log_sk + log_ph,
                         records={kind: {s: read(b, s) for s in b.info.splits}
                                  for kind, b in (("sketches", sk), ("photos", ph))})
    yield out
    mp.undo()


# ------------------------------------------------------------------ class lists
def test_normalise_class_and_lists():
    spellings = ["hot-air_balloon", "hot_air_balloon", "hot air balloon", "Hot-Air Balloon "]
    assert {normalise_class(s) for s in spellings} == {"hot air balloon"}
    assert normalise_class("jack-o-lantern") == normalise_class("jack_o_lantern")
    assert normalise_class("jack_o_lantern") == "jack o lantern"
    assert normalise_class("car_(sedan)") == normalise_class("car (sedan)") == "car (sedan)"
    for lst in (class_lists.SKETCHY_CLASSES, class_lists.TUBERLIN_CLASSES,
                class_lists.QUICKDRAW_CLASSES):
        assert all(normalise_class(c) == c for c in lst) and list(lst) == sorted(set(lst))
    assert (len(class_lists.SKETCHY_CLASSES), len(class_lists.TUBERLIN_CLASSES),
            len(class_lists.QUICKDRAW_CLASSES)) == (125, 250, 110)
    assert (len(class_lists.SKETCHY_ZS1_UNSEEN), len(class_lists.SKETCHY_ZS2_UNSEEN)) == (25, 21)
    assert len(class_lists.TUBERLIN_ZS_UNSEEN) == len(class_lists.TUBERLIN_MASBIR_UNSEEN) == 30
    assert len(class_lists.QUICKDRAW_UNSEEN) == 30
    assert set(class_lists.TUBERLIN_ZS_UNSEEN) != set(class_lists.TUBERLIN_MASBIR_UNSEEN)
    folder = class_lists.tuberlin_photo_folder
    assert [folder(c) for c in ("flying bird", "space shuttle", "trombone", "giraffe")] == [
        "flyingbird", "spacesshuttle", "tromobone", "griaffe"]
    assert folder("t-shirt") == "tshirt" and folder("bear (animal)") == "bearanimal"


def test_registered_in_loader():
    for name, cls in BUILDERS.items():
        module, _, attr = tfds_io.REAL_DATASETS[name].partition(":")
        assert getattr(importlib.import_module(module), attr) is cls
        assert cls.name == name and "manual" in cls.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_built_through_the_loader(tmp_path):
    if not hasattr(tfds_io, "builder_class"):
        pytest.skip("the generic loader of real datasets is not in sbirjax/data/tfds_io.py")
    fx.write_tuberlin(str(tmp_path / "src"), classes=["trombone", "swan", "airplane"])
    config = defaults.base().data
    config.update({"name": "tuberlin", "data_dir": str(tmp_path / "data"), "skip_bad": False})
    sk, ph = tfds_io.builders(config)
    with contextlib.redirect_stdout(io.StringIO()):
        for b in (sk, ph):
            tfds_io.prepare(b, manual_dir=str(tmp_path / "src"), log=lambda *_: None)
    split = splits_lib.load(sk, ph, "zs_test", "zs_test")
    assert split.num_sketches == 3 and split.num_photos == 3       # trombone only
    assert set(split.category_names[i] for i in split.sketch_category) == {"trombone"}


# ------------------------------------------------------------------ every record
@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_record_matches_its_file(built, name):
    d = built[name]
    w = d["written"]
    for kind in ("sketches", "photos"):
        for split, recs in d["records"][kind].items():
            assert recs, split
            source = w.originals if split.endswith("_original") else getattr(w, kind)
            for key, r in recs.items():
                item = source[key]
                assert r["category"] == item.category
                assert r["image"].dtype == np.uint8 and r["image"].shape == item.pixels.shape
                np.testing.assert_array_equal(r["image"], item.pixels, err_msg=f"{split} {key}")
                if kind == "sketches":
                    assert (r["photo_id"], int(r["user"])) == (item.photo_id, item.user), key


def test_image_feature_takes_bytes_and_paths_without_tensorflow(built):
    feature = tfds.features.Image(shape=(None, None, 3))
    w = built["sketchy"]["written"]
    for item in (next(iter(w.sketches.values())), next(iter(w.photos.values()))):  # PNG, JPEG
        with open(item.path, "rb") as f:
            data = f.read()
        assert feature.encode_example(item.path) == feature.encode_example(data) == data
    assert "tensorflow" not in sys.modules


def test_spelling_variants_meet_in_one_class(built):
    sk = built["sketchy"]["records"]
    for kind in ("sketches", "photos"):
        classes = {r["category"] for r in sk[kind]["zs2_train"].values()}
        assert {"hot air balloon", "jack o lantern"} <= classes
    tub = built["tuberlin"]
    photo_classes = {r["category"] for r in tub["records"]["photos"]["dsh_gallery"].values()}
    assert photo_classes == tub["written"].classes("photos") == tub["written"].classes()
    assert {"trombone", "giraffe", "space shuttle", "flying bird", "t shirt"} <= photo_classes
    exts = {os.path.splitext(tub["written"].photos[k].path)[1]
            for k in tub["records"]["photos"]["dsh_gallery"]}
    assert exts == {".JPEG", ".jpg"}
    assert "matches no class" not in tub["log"]


# ------------------------------------------------------------------ splits
def _ids(items: dict, classes) -> set:
    return {k for k, it in items.items() if it.category in set(classes)}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_zero_shot_splits(built, name):
    d = built[name]
    w, recs = d["written"], d["records"]
    all_classes = set(BUILDERS[name].CLASSES)
    for prefix, unseen in ZS_LISTS[name].items():
        seen = all_classes - set(unseen)
        for kind in ("sketches", "photos"):
            items = getattr(w, kind)
            train, test = recs[kind][f"{prefix}_train"], recs[kind][f"{prefix}_test"]
            assert set(train) == _ids(items, seen) and set(test) == _ids(items, unseen)
            train_cls = {r["category"] for r in train.values()}
            test_cls = {r["category"] for r in test.values()}
            assert not train_cls & test_cls and test_cls <= set(unseen)
            assert len(test_cls) >= 2 and len(train_cls) >= 2   # the fixture covers both sides
    for gallery, prefix in GZS[name].items():
        unseen = set(ZS_LISTS[name][prefix])
        got = recs["photos"][gallery]
        assert _ids(w.photos, unseen) <= set(got)
        for cls in w.classes("photos") - unseen:
            files = sorted(k for k, it in w.photos.items() if it.category == cls)
            picked = sorted(k for k in got if got[k]["category"] == cls)
            assert len(picked) == int(np.floor(cs.GZS_SEEN_FRACTION * len(files) + 0.5))
            stems = sorted(os.path.basename(w.photos[k].path) for k in files)
            expect = [f"{cls}/{os.path.splitext(stems[i])[0]}"
                      for i in cs.gzs_seen(cls, len(files))]
            assert picked == sorted(expect)


@pytest.mark.parametrize("name", ["sketchy", "tuberlin"])
def test_dsh_splits(built, name):
    d = built[name]
    w, recs = d["written"], d["records"]
    train, test = recs["sketches"]["dsh_train"], recs["sketches"]["dsh_test"]
    assert not set(train) & set(test) and set(train) | set(test) == set(w.sketches)
    for cls in w.classes():
        n = sum(it.category == cls for it in w.sketches.values())
        held = sum(r["category"] == cls for r in test.values())
        assert held == min(DSH_SMALL[name], n) and held < n
    assert set(recs["photos"]["dsh_gallery"]) == set(w.photos)
    assert "dsh_train" not in recs["photos"] and "dsh_gallery" not in recs["sketches"]


def test_sketchy_originals_and_links(built):
    d = built["sketchy"]
    w, recs = d["written"], d["records"]
    for prefix, unseen in ZS_LISTS["sketchy"].items():
        assert set(recs["photos"][f"{prefix}_test_original"]) == _ids(w.originals, unseen)
    # extended_photo includes the originals: every sketch finds its photo in the ZS galleries
    for prefix in ("zs1", "zs2"):
        split = splits_lib.load(d["sketches"], d["photos"], f"{prefix}_test", f"{prefix}_test")
        assert split.num_sketches > 0 and np.all(split.sketch_photo >= 0)
        np.testing.assert_array_equal(split.photo_category[split.sketch_photo],
                                      split.sketch_category)
        fg = splits_lib.load(d["sketches"], d["photos"], f"{prefix}_test",
                             f"{prefix}_test_original")
        assert np.all(fg.sketch_photo >= 0)
    assert all(r["photo_id"] and r["user"] >= 1 for r in recs["sketches"]["dsh_train"].values())


@pytest.mark.parametrize("name", ["tuberlin", "quickdraw"])
def test_unpaired_datasets_have_no_links(built, name):
    for recs in built[name]["records"]["sketches"].values():
        assert all(r["photo_id"] == "" and r["user"] == -1 for r in recs.values())


def test_counts_printed_and_compared(built):
    log = built["sketchy"]["log"]
    n = len(built["sketchy"]["records"]["sketches"]["zs2_test"])
    assert f"sketchy/sketches: zs2_test: {n} examples" in log
    assert (f"split zs2_test has {n} examples; the documented count is 12694") in log
    assert "documented count is 10453" in log and "documented count is 17101" in log
    qd = built["quickdraw"]["log"]
    assert "documented count is 92291" in qd and "documented count is 54151" in qd
    assert "documented count is 27989" in built["tuberlin"]["log"]


# ------------------------------------------------------------------ bad inputs
def test_missing_folder_names_the_path(tmp_path):
    w = fx.write_sketchy(str(tmp_path / "src"), classes=["bat", "dog"])
    shutil.rmtree(os.path.join(w.root, "extended_photo"))
    with pytest.raises(common.DatasetLayoutError) as e:
        build("sketchy", "photos", tmp_path / "src", tmp_path / "data")
    assert os.path.join(w.root, "extended_photo") in str(e.value)
    assert "extended_photo/<class>/*.jpg" in str(e.value)
    shutil.rmtree(os.path.join(w.root, "sketch"))
    b = cs.Sketchy(config="sketches", data_dir=str(tmp_path / "data"), file_format="array_record")
    with pytest.raises(common.DatasetLayoutError, match="sketch/tx_000000000000"):
        b.check_manual_dir(str(tmp_path / "src"))
    with pytest.raises(common.DatasetLayoutError, match="nowhere"):
        build("quickdraw", "sketches", tmp_path / "nowhere", tmp_path / "data")


def test_sketchy_as_extracted_from_the_archives(tmp_path):
    """rendered_256x256.7z gives 256x256/{sketch,photo}; the extension EXTEND_image_sketchy/."""
    w = fx.write_sketchy(str(tmp_path / "src"), classes=["bat", "dog"])
    os.rename(os.path.join(w.root, "extended_photo"), tmp_path / "src" / "EXTEND_image_sketchy")
    os.rename(w.root, tmp_path / "src" / "256x256")
    b, _ = build("sketchy", "photos", tmp_path / "src", tmp_path / "data")
    assert set(read(b, "dsh_gallery")) == set(w.photos)
    assert set(read(b, "zs2_test_original")) == _ids(w.originals, ["bat"])   # dog is seen


@pytest.mark.parametrize("name,kind,classes", [
    ("tuberlin", "photos", ["trombone", "airplane"]),       # a truncated .JPEG photo
    ("quickdraw", "sketches", ["bat", "airplane"]),         # a truncated .png sketch
])
def test_truncated_image_is_fatal_or_skipped(tmp_path, name, kind, classes):
    w = fx.WRITERS[name](str(tmp_path / "src"), classes=classes)
    items = getattr(w, kind)
    bad_id = sorted(items)[1]
    fx.truncate(items[bad_id].path)
    with pytest.raises(common.BadRecordError) as e:
        build(name, kind, tmp_path / "src", tmp_path / "strict")
    assert items[bad_id].path in str(e.value)
    b, log = build(name, f"{kind}_skipbad", tmp_path / "src", tmp_path / "skip")
    assert f"skipping {items[bad_id].path}" in log and "skipped 1 unreadable records" in log
    got = set()
    for split in b.info.splits:
        got |= set(read(b, split))
    assert got == set(items) - {bad_id}


def test_sketchy_sketch_without_photo_is_reported(tmp_path):
    w = fx.write_sketchy(str(tmp_path / "src"), classes=["bat", "dog"])
    orphan = os.path.join(w.root, "sketch", "tx_000000000000", "dog", "n0999999_1-3.png")
    fx.write_sketch(orphan, np.random.default_rng(5), "L")
    b, log = build("sketchy", "sketches", tmp_path / "src", tmp_path / "data")
    assert orphan in log and "kept with photo_id ''" in log
    assert "1 sketches name a photo that does not exist" in log
    assert log.count(orphan) == 1                      # reported once, not once per split
    rec = read(b, "dsh_train") | read(b, "dsh_test")
    assert rec["dog/n0999999_1-3"]["photo_id"] == "" and rec["dog/n0999999_1-3"]["user"] == 3


def test_unmatched_photo_folder_and_empty_split_reported(tmp_path):
    w = fx.write_tuberlin(str(tmp_path / "src"), classes=["giraffe", "trombone"])
    os.rename(os.path.join(w.root, "ImageResized", "griaffe"),
              os.path.join(w.root, "ImageResized", "giraff"))
    b, log = build("tuberlin", "photos", tmp_path / "src", tmp_path / "data")
    line = next(x for x in log.splitlines() if "matches no class" in x)
    assert "giraff'" in line and "'giraffe'" in line and "'griaffe'" in line
    # no MA-SBIR unseen class in this copy: those splits are left out, with a warning
    assert "zs_mas_test" not in b.info.splits and "split zs_mas_test would be empty" in log
    assert {r["category"] for r in read(b, "dsh_gallery").values()} == {"trombone"}


@pytest.mark.parametrize("kind,folder", [("photos", "ImageResized"), ("sketches", "png")])
def test_empty_class_folder_is_fatal_or_skipped(tmp_path, kind, folder):
    """A class folder with no images: a clear error naming the class and the folder, or with
    skip_bad a warning and the class left out (the rule of unreadable files)."""
    w = fx.write_tuberlin(str(tmp_path / "src"), classes=["giraffe", "trombone"])
    parent = next(os.path.join(b, folder) for b, dirs, _ in os.walk(w.root) if folder in dirs)
    empty = next(os.path.join(parent, d) for d in sorted(os.listdir(parent))
                 if d.startswith("trom"))  # photo folders are misspelt as released
    for name in os.listdir(empty):
        os.remove(os.path.join(empty, name))
    with pytest.raises(common.DatasetLayoutError) as e:
        build("tuberlin", kind, tmp_path / "src", tmp_path / "strict")
    assert "trombone" in str(e.value) and empty in str(e.value) and "--skip_bad" in str(e.value)
    b, log = build("tuberlin", f"{kind}_skipbad", tmp_path / "src", tmp_path / "skip")
    assert "hold no image file and are left out" in log and "trombone" in log
    got = set()
    for split in b.info.splits:
        got |= {r["category"] for r in read(b, split).values()}
    assert got == {"giraffe"}
