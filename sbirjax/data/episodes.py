"""StyleMeUp meta-training episodes: which sketches and photos the inner and the outer loss see.

A task has an inner (meta-train) part and an outer (meta-test) part. Each part is two sketches of
one photo by different users (styles), the photo and a negative photo: what one call of the
StyleMeUp loss needs (two styles for the cross-style terms).

  official    the released code's episode: one photo p, its negative n and three sketches of p by
              users a, b, c; inner on (a, b; p, n), outer on (a, c; p, n). The outer loss
              shares the photo, the negative and one sketch with the inner loss, so one SGD step
              can separate exactly that pair (docs/stylemeup_styles.md).
  disjoint    inner as official; outer on ANOTHER photo p' sketched by the held-out user c (and a
              second sketch of p' by any other user), with its own negative n'.
  user_split  the task splits the split's users into two halves; inner on a photo sketched by two
              users of one half, outer on another photo sketched by two users of the other (the
              MLDG / Tseng et al. pattern of meta-train and meta-test domains). The split is drawn
              per task, not per meta-step: tasks are built independently, one per stream position.

`official` keeps the task layout it always had ('sketches' (3, H, W, 3), 'photo', 'negative');
the others add 'outer_sketches' (2, H, W, 3), 'outer_photo', 'outer_negative' and keep two inner
sketches.
"""
from __future__ import annotations

import numpy as np

EPISODES = ("official", "disjoint", "user_split")
_TRIES = 64  # random draws before the pickers fall back to a scan


def check(episode: str, *, pairing: str = "instance", num_users: int | None = None):
    """Fail early, naming the key, for a design the data cannot serve (num_users: distinct
    training users, when known before the data is read)."""
    if episode not in EPISODES:
        raise ValueError(f"config.meta.episode={episode!r}: use one of {EPISODES}")
    if episode == "user_split":
        if pairing != "instance":
            raise ValueError("config.meta.episode='user_split' needs user ids "
                             "(config.data.pairing='instance'); category-level data has none")
        if num_users is not None and num_users < 4:
            raise ValueError(f"config.meta.episode='user_split' needs at least 4 training users "
                             f"(two per half), the data has {num_users}; use 'disjoint'")


def training_users(data_config) -> int | None:
    """Distinct training users of a dataset, where the config alone tells."""
    if data_config.name == "synthetic":
        from sbirjax.data import synthetic
        spec = synthetic.WorldSpec(**dict(data_config.synthetic))
        return spec.num_users - spec.num_test_users
    if data_config.name in ("shoev2", "chairv2"):
        return 3  # the sketch index k of each photo stands for the user (no user ids)
    return None


class Picker:
    """Index of which user sketched which photo, for the outer parts of the episodes."""

    def __init__(self, sketches_of: dict, users: np.ndarray):
        self.sketches_of, self.users = sketches_of, users
        self.photos = np.array(sorted(sketches_of), np.int64)
        self.photos_by_user: dict[int, list[int]] = {}
        for j, ix in sketches_of.items():
            for u in set(users[ix].tolist()):
                self.photos_by_user.setdefault(int(u), []).append(int(j))

    def two_by(self, photo: int, allowed, rng) -> list[int] | None:
        """Two sketches of `photo` by two distinct users for which `allowed(user)` holds."""
        chosen, seen = [], set()
        for i in rng.permutation(self.sketches_of[photo]):
            u = int(self.users[i])
            if u not in seen and allowed(u):
                chosen.append(int(i))
                seen.add(u)
            if len(chosen) == 2:
                return chosen
        return None

    def disjoint_outer(self, photo: int, held_out: int, rng) -> tuple[int, list[int]]:
        """(p', [sketch by another user, sketch by the held-out user]) with p' != photo."""
        u_c = int(self.users[held_out])
        candidates = [j for j in self.photos_by_user.get(u_c, []) if j != photo]
        for _ in range(_TRIES if candidates else 0):
            j = candidates[int(rng.integers(len(candidates)))]
            mine = [int(i) for i in self.sketches_of[j] if int(self.users[i]) == u_c]
            other = self.two_by(j, lambda u: u != u_c, rng)
            if mine and other:
                return j, [other[0], mine[0]]
        # The held-out user drew no other usable photo (e.g. every sketch its own style):
        # any other photo, two sketches by distinct users.
        return self._any_other(photo, lambda u: True, rng)

    def user_split_parts(self, photo: int, rng) -> tuple[list[int], int, list[int]]:
        """(inner sketches of `photo`, p', outer sketches of p'): the users of the two parts
        are the two halves of a random split of all users, the inner pair in the first half."""
        inner = self.two_by(photo, lambda u: True, rng)
        pair = {int(self.users[i]) for i in inner}
        rest = np.array(sorted(set(self.photos_by_user) - pair))
        rng.shuffle(rest)
        outer_users = set(rest[:len(self.photos_by_user) // 2].tolist())
        j, outer = self._any_other(photo, lambda u: u in outer_users, rng)
        return inner, j, outer

    def _any_other(self, photo: int, allowed, rng) -> tuple[int, list[int]]:
        for _ in range(_TRIES):
            j = int(self.photos[int(rng.integers(len(self.photos)))])
            two = self.two_by(j, allowed, rng) if j != photo else None
            if two:
                return j, two
        for j in rng.permutation(self.photos):
            two = self.two_by(int(j), allowed, rng) if j != photo else None
            if two:
                return int(j), two
        raise ValueError("no other photo has two sketches by users outside the inner part: "
                         "this split cannot serve the episode design (config.meta.episode)")
