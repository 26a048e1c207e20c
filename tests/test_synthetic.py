"""The synthetic sketch-photo world: determinism, splits, stroke format, coverage, validation."""
import dataclasses

import numpy as np
import pytest

from sbirjax.data import synthetic

SMALL = synthetic.WorldSpec(seed=3, instances_per_category=5, test_instances_per_category=2,
                            num_users=9, num_test_users=4, train_sketches_per_instance=3,
                            test_sketches_per_instance=3, seen_user_sketches_per_test_instance=2,
                            photo_size=48, gzs_seen_fraction=0.25)


@pytest.fixture(scope="module")
def world():
    return synthetic.generate(SMALL)


def _photo_cat(world, split):
    return {world.photos[i]["category"] for i in world.splits["photos"][split]}


def _sketch_cat(world, split):
    return {world.sketches[i]["category"] for i in world.splits["sketches"][split]}


def test_determinism(world):
    again = synthetic.generate(SMALL)
    assert len(again.photos) == len(world.photos) and len(again.sketches) == len(world.sketches)
    for a, b in zip(world.photos, again.photos):
        np.testing.assert_array_equal(a["image"], b["image"])
    for a, b in zip(world.sketches, again.sketches):
        assert a["sketch_id"] == b["sketch_id"]
        np.testing.assert_array_equal(a["strokes"], b["strokes"])
    for k in world.splits:
        for name in world.splits[k]:
            np.testing.assert_array_equal(world.splits[k][name], again.splits[k][name])
    assert world.users == again.users

    other = synthetic.generate(dataclasses.replace(SMALL, seed=4))
    assert not np.array_equal(world.photos[0]["image"], other.photos[0]["image"])
    assert not np.array_equal(world.sketches[0]["strokes"], other.sketches[0]["strokes"])
    assert world.users != other.users
    assert not np.array_equal(world.splits["photos"]["gzs_gallery"],
                              other.splits["photos"]["gzs_gallery"])


def test_categories_and_words(world):
    assert len(world.categories) == 20 == len(world.category_words)
    assert len(set(world.categories)) == 20
    for name, (body, part) in zip(world.categories, world.category_words):
        assert body in name and part in name
    assert set(world.unseen_categories) == set(SMALL.unseen_categories)
    seen_words = [w for n, w in zip(world.categories, world.category_words)
                  if n not in world.unseen_categories]
    seen_bodies, seen_parts = {b for b, _ in seen_words}, {p for _, p in seen_words}
    for name in world.unseen_categories:
        body, part = world.category_words[world.categories.index(name)]
        assert body in seen_bodies and part in seen_parts     # new combination of seen words
        assert (body, part) not in seen_words
    assert len(world.seen_categories) + len(world.unseen_categories) == 20


def test_photos(world):
    n = 20 * SMALL.instances_per_category
    assert len(world.photos) == n
    assert len({p["photo_id"] for p in world.photos}) == n
    for p in world.photos:
        assert p["image"].dtype == np.uint8 and p["image"].shape == (48, 48, 3)
        assert p["photo_id"] == f"c{p['category']:02d}_i{p['instance']:03d}"
    # photos are not flat: the object stands out from the background
    assert all(p["image"].std() > 10 for p in world.photos)
    # instances of one category differ
    assert not np.array_equal(world.photos[0]["image"], world.photos[1]["image"])


def test_stroke_format(world):
    for s in world.sketches:
        st = s["strokes"]
        assert st.dtype == np.float32 and st.ndim == 2 and st.shape[1] == 3 and len(st) >= 2
        assert st[-1, 2] == 1
        assert set(np.unique(st[:, 2]).tolist()) <= {0.0, 1.0}
        assert np.all(st[:, :2] >= 0) and np.all(st[:, :2] < 256)
        # every stroke has at least two points
        ends = np.nonzero(st[:, 2])[0]
        assert np.all(np.diff(np.concatenate([[-1], ends])) >= 2)
        assert world.photos[s["photo_index"]]["photo_id"] == s["photo_id"]
        assert world.photos[s["photo_index"]]["category"] == s["category"]
    strokes = np.array([s["strokes"][:, 2].sum() for s in world.sketches])
    points = np.array([len(s["strokes"]) for s in world.sketches])
    assert 5 <= np.median(strokes) <= 20 and 50 <= np.median(points) <= 400
    assert len({s["sketch_id"] for s in world.sketches}) == len(world.sketches)


def test_users_differ(world):
    assert len(world.users) == SMALL.num_users
    assert world.test_users == tuple(range(5, 9)) and world.train_users == tuple(range(5))
    spacing = [u["spacing"] for u in world.users]
    assert max(spacing) > 1.3 * min(spacing)
    # sketches of one photo by different users differ
    by_photo = {}
    for s in world.sketches:
        by_photo.setdefault(s["photo_index"], []).append(s["strokes"])
    a, b = by_photo[0][:2]
    assert a.shape != b.shape or not np.allclose(a, b)


def test_photo_splits(world):
    ph = world.splits["photos"]
    for name, idx in ph.items():
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0), name
    assert set(ph["train"]).isdisjoint(ph["test"])
    assert len(ph["train"]) + len(ph["test"]) == len(world.photos)
    assert len(ph["test"]) == 20 * SMALL.test_instances_per_category
    unseen = {world.categories.index(c) for c in world.unseen_categories}
    assert _photo_cat(world, "zs_test") == unseen
    assert _photo_cat(world, "zs_train") == set(range(20)) - unseen
    assert set(ph["zs_train"]).isdisjoint(ph["zs_test"])
    gallery = set(ph["gzs_gallery"])
    assert set(ph["zs_test"]) <= gallery
    extra = gallery - set(ph["zs_test"])
    assert extra <= set(ph["zs_train"])
    assert len(extra) == round(SMALL.gzs_seen_fraction * len(ph["zs_train"]))


def test_sketch_splits(world):
    sk = world.splits["sketches"]
    test_users, train_users = set(world.test_users), set(world.train_users)
    test_photos = set(world.splits["photos"]["test"])
    users = {k: {world.sketches[i]["user"] for i in v} for k, v in sk.items()}
    photos = {k: {world.sketches[i]["photo_index"] for i in v} for k, v in sk.items()}
    assert users["train"] <= train_users and photos["train"].isdisjoint(test_photos)
    assert users["test"] <= test_users and photos["test"] == test_photos
    assert users["test_seen_users"] <= train_users and photos["test_seen_users"] == test_photos
    assert users["zs_train"] <= train_users
    assert users["zs_test"] == set(range(SMALL.num_users))
    unseen = {world.categories.index(c) for c in world.unseen_categories}
    assert _sketch_cat(world, "zs_test") == unseen
    assert _sketch_cat(world, "zs_train") == set(range(20)) - unseen
    for a, b in (("train", "test"), ("train", "test_seen_users"), ("test", "test_seen_users"),
                 ("zs_train", "zs_test")):
        assert set(sk[a]).isdisjoint(sk[b]), (a, b)
    assert len(sk["train"]) + len(sk["test"]) + len(sk["test_seen_users"]) == len(world.sketches)


def test_every_instance_sketched_by_three_users(world):
    sk = world.splits["sketches"]
    for split, photo_split, k in (("train", "train", SMALL.train_sketches_per_instance),
                                  ("test", "test", SMALL.test_sketches_per_instance),
                                  ("test_seen_users", "test",
                                   SMALL.seen_user_sketches_per_test_instance)):
        users = {}
        for i in sk[split]:
            s = world.sketches[i]
            users.setdefault(s["photo_index"], []).append(s["user"])
        assert set(users) == set(world.splits["photos"][photo_split])
        for us in users.values():
            assert len(us) == len(set(us)) == k
            if split != "test_seen_users":
                assert len(us) >= 3


def test_default_unseen_categories_are_valid():
    spec = synthetic.WorldSpec()
    names, words, mask = synthetic._validate(spec)
    assert mask.sum() == len(spec.unseen_categories) == 5
    seen = [w for w, m in zip(words, mask) if not m]
    assert {b for b, _ in words} == {b for b, _ in seen}
    assert {p for _, p in words} == {p for _, p in seen}


@pytest.mark.parametrize("change", [
    dict(unseen_categories=("round body with wings",)),                     # not a category
    dict(unseen_categories=tuple(f"round body with {p}"                     # 'round' never seen
                                 for p in ("handle", "legs", "antenna", "wheels"))),
    dict(unseen_categories=tuple(f"{b} body with wheels"                    # 'wheels' never seen
                                 for b in ("round", "square", "triangular", "hexagonal",
                                           "diamond"))),
    dict(unseen_categories=()),
    dict(test_instances_per_category=5),
    dict(num_test_users=2),                     # fewer than 3 test users per test instance
    dict(train_sketches_per_instance=2),
    dict(train_sketches_per_instance=6),        # only 5 train users
    dict(gzs_seen_fraction=1.5),
    dict(seed=-1),
])
def test_bad_spec_raises(change):
    with pytest.raises(ValueError):
        synthetic.generate(dataclasses.replace(SMALL, **change))


def test_spec_is_hashable_with_list_input():
    names = ["round body with legs", "square body with wheels"]
    spec = synthetic.WorldSpec(unseen_categories=names)
    assert isinstance(spec.unseen_categories, tuple)
    assert hash(spec) == hash(synthetic.WorldSpec(
        unseen_categories=("round body with legs", "square body with wheels")))


# ----------------------------------------------------------------------------- rich styles
RICH = dataclasses.replace(SMALL, style_model="rich", instances_per_category=3,
                           test_instances_per_category=1)


@pytest.fixture(scope="module")
def rich():
    return synthetic.generate(RICH)


def test_rich_world_is_deterministic_and_keeps_the_basic_world(rich, world):
    again = synthetic.generate(RICH)
    for a, b in zip(rich.sketches, again.sketches):
        np.testing.assert_array_equal(a["strokes"], b["strokes"])
    assert rich.users == again.users
    # the basic world draws nothing from the rich streams: the photos of a spec are the same
    basic = synthetic.generate(dataclasses.replace(RICH, style_model="basic"))
    for a, b in zip(rich.photos, basic.photos):
        np.testing.assert_array_equal(a["image"], b["image"])
    assert all("warp_amp" not in u for u in world.users)
    assert all("warp_amp" in u and "hatch" in u for u in rich.users)
    with pytest.raises(ValueError, match="style_model"):
        synthetic.generate(dataclasses.replace(RICH, style_model="fancy"))


def test_rich_sketch_format(rich):
    for s in rich.sketches:
        st = s["strokes"]
        assert st.dtype == np.float32 and st.ndim == 2 and st.shape[1] == 3
        assert st[-1, 2] == 1 and set(np.unique(st[:, 2])) <= {0.0, 1.0}
        assert st[:, :2].min() >= 0 and st[:, :2].max() < 256


def test_rich_datasets_have_their_own_tag():
    from tfds_builders import synthetic_sbir
    assert synthetic_sbir.spec_tag(RICH) != synthetic_sbir.spec_tag(
        dataclasses.replace(RICH, style_model="basic"))
