"""Class lists, zero-shot splits and folder-name quirks of Sketchy, TU-Berlin and QuickDraw-ext.

Every class name in sbirjax is stored in ONE canonical form, produced by `normalise_class`:
lower case, words separated by single spaces, underscores and hyphens read as spaces, surrounding
and repeated white space removed. Parentheses and other characters are kept. So 'hot-air_balloon',
'hot_air_balloon' and 'hot air balloon' all become 'hot air balloon'; 'jack-o-lantern' and
'jack_o_lantern' become 'jack o lantern'; 'car_(sedan)' becomes 'car (sedan)'; 't-shirt' becomes
't shirt'. Folder names read from disk and every list below go through it once, so the spelling of
one release (spaces in some, underscores or hyphens in others) never decides whether two names
match.

Sources: the zero-shot lists are the published ones; the full
class lists are the class folders of the official releases.
"""
from __future__ import annotations

import re


def normalise_class(name: str) -> str:
    """The canonical form of a class name: lower case, '_' and '-' as spaces, single spaces."""
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated names -> tuple of normalised names (duplicates are an error)."""
    out = tuple(normalise_class(n) for n in text.split(",") if n.strip())
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate class names in {out}")
    return out


# ---------------------------------------------------------------- Sketchy (125 classes)
SKETCHY_CLASSES = tuple(sorted(_names("""
    airplane, alarm_clock, ant, ape, apple, armor, axe, banana, bat, bear, bee, beetle, bell,
    bench, bicycle, blimp, bread, butterfly, cabin, camel, candle, cannon, car_(sedan), castle,
    cat, chair, chicken, church, couch, cow, crab, crocodilian, cup, deer, dog, dolphin, door,
    duck, elephant, eyeglasses, fan, fish, flower, frog, geyser, giraffe, guitar, hamburger,
    hammer, harp, hat, hedgehog, helicopter, hermit_crab, horse, hot-air_balloon, hotdog,
    hourglass, jack-o-lantern, jellyfish, kangaroo, knife, lion, lizard, lobster, motorcycle,
    mouse, mushroom, owl, parrot, pear, penguin, piano, pickup_truck, pig, pineapple, pistol,
    pizza, pretzel, rabbit, raccoon, racket, ray, rhinoceros, rifle, rocket, sailboat, saw,
    saxophone, scissors, scorpion, sea_turtle, seagull, seal, shark, sheep, shoe, skyscraper,
    snail, snake, songbird, spider, spoon, squirrel, starfish, strawberry, swan, sword, table,
    tank, teapot, teddy_bear, tiger, tree, trumpet, turtle, umbrella, violin, volcano,
    wading_bird, wheelchair, windmill, window, wine_bottle, zebra""")))

# Zero-shot split 1 (Shen et al., CVPR 2018): 25 unseen classes.
SKETCHY_ZS1_UNSEEN = _names("""
    cup, swan, harp, squirrel, snail, ray, pineapple, volcano, rifle, scissors, parrot, windmill,
    teddy_bear, tree, wine_bottle, deer, chicken, airplane, wheelchair, tank, umbrella, butterfly,
    camel, horse, bell""")

# Zero-shot split 2 (Yelamarthi et al., ECCV 2018): 21 unseen classes.
SKETCHY_ZS2_UNSEEN = _names("""
    bat, cabin, cow, dolphin, door, giraffe, helicopter, mouse, pear, raccoon, rhinoceros, saw,
    scissors, seagull, skyscraper, songbird, sword, tree, wheelchair, windmill, window""")

# ---------------------------------------------------------------- TU-Berlin (250 classes)
# The sketch folder names of png/ (spaces, hyphens and parentheses as released), normalised.
TUBERLIN_CLASSES = tuple(sorted(_names("""
    airplane, alarm clock, angel, ant, apple, arm, armchair, ashtray, axe, backpack, banana, barn,
    baseball bat, basket, bathtub, bear (animal), bed, bee, beer-mug, bell, bench, bicycle,
    binoculars, blimp, book, bookshelf, boomerang, bottle opener, bowl, brain, bread, bridge,
    bulldozer, bus, bush, butterfly, cabinet, cactus, cake, calculator, camel, camera, candle,
    cannon, canoe, car (sedan), carrot, castle, cat, cell phone, chair, chandelier, church,
    cigarette, cloud, comb, computer monitor, computer-mouse, couch, cow, crab, crane (machine),
    crocodile, crown, cup, diamond, dog, dolphin, donut, door, door handle, dragon, duck, ear,
    elephant, envelope, eye, eyeglasses, face, fan, feather, fire hydrant, fish, flashlight,
    floor lamp, flower with stem, flying bird, flying saucer, foot, fork, frog, frying-pan, giraffe,
    grapes, grenade, guitar, hamburger, hammer, hand, harp, hat, head, head-phones, hedgehog,
    helicopter, helmet, horse, hot air balloon, hot-dog, hourglass, house, human-skeleton,
    ice-cream-cone, ipod, kangaroo, key, keyboard, knife, ladder, laptop, leaf, lightbulb, lighter,
    lion, lobster, loudspeaker, mailbox, megaphone, mermaid, microphone, microscope, monkey, moon,
    mosquito, motorbike, mouse (animal), mouth, mug, mushroom, nose, octopus, owl, palm tree, panda,
    paper clip, parachute, parking meter, parrot, pear, pen, penguin, person sitting,
    person walking, piano, pickup truck, pig, pigeon, pineapple, pipe (for smoking), pizza,
    potted plant, power outlet, present, pretzel, pumpkin, purse, rabbit, race car, radio, rainbow,
    revolver, rifle, rollerblades, rooster, sailboat, santa claus, satellite, satellite dish,
    saxophone, scissors, scorpion, screwdriver, sea turtle, seagull, shark, sheep, ship, shoe,
    shovel, skateboard, skull, skyscraper, snail, snake, snowboard, snowman, socks, space shuttle,
    speed-boat, spider, sponge bob, spoon, squirrel, standing bird, stapler, strawberry,
    streetlight, submarine, suitcase, sun, suv, swan, sword, syringe, t-shirt, table, tablelamp,
    teacup, teapot, teddy-bear, telephone, tennis-racket, tent, tiger, tire, toilet, tomato, tooth,
    toothbrush, tractor, traffic light, train, tree, trombone, trousers, truck, trumpet, tv,
    umbrella, van, vase, violin, walkie talkie, wheel, wheelbarrow, windmill, wine-bottle,
    wineglass, wrist-watch, zebra""")))

# The standard zero-shot list (Shen et al. 2018; SAKE): 30 unseen classes.
TUBERLIN_ZS_UNSEEN = _names("""
    banana, bus, tractor, suitcase, streetlight, telephone, bottle opener, canoe, fan, teacup,
    penguin, laptop, shoe, lighter, hot air balloon, pizza, brain, ant, t-shirt, trombone, windmill,
    snowboard, table, rollerblades, parachute, space shuttle, bridge, frying-pan, bread, horse""")

# MA-SBIR's own 30-class list (a different one; its published TU-Berlin numbers use it).
TUBERLIN_MASBIR_UNSEEN = _names("""
    backpack, bicycle, bookshelf, cabinet, calculator, castle, couch, dolphin, door handle, duck,
    eyeglasses, fire hydrant, flying saucer, foot, hedgehog, knife, octopus, pear, purse,
    rollerblades, sailboat, snail, snake, snowman, swan, tablelamp, traffic light, truck, umbrella,
    walkie talkie""")

# TU-Berlin-extended photo folders (ImageResized/<folder>) whose name is not simply the class name
# with spaces, hyphens and parentheses removed, or that are misspelt in the release.
# Keys: normalised sketch class names; values: photo folder names exactly as released.
# Certain: flying bird, space shuttle, trombone, giraffe.
# The others are the folder names used by the public preparation scripts of the field; confirm
# them against the real folder list and extend this map when the release shows more: the builder
# reports every photo folder it cannot match, with the folder name and the closest unmatched class.
# A folder that equals the class name, or the class name with every character other than letters
# and digits removed ('flowerwithstem', 'bearanimal'), is matched without an entry here.
TUBERLIN_PHOTO_FOLDERS = {
    "flying bird": "flyingbird",
    "space shuttle": "spacesshuttle",      # sic
    "trombone": "tromobone",               # sic
    "giraffe": "griaffe",                  # sic
    "spider": "spidar",                    # sic
    "chandelier": "chandeler",             # sic
    "diamond": "diamod",                   # sic
    "wrist watch": "wristwatching",        # sic
    "mouse (animal)": "mouse",             # qualifier dropped
    "pipe (for smoking)": "pipe",          # qualifier dropped
}

# ---------------------------------------------------------------- QuickDraw-extended (110 classes)
# The class folders of QuickDraw_sketches_final/ and QuickDraw_images_final/ (spelt with spaces
# in some folders and underscores in others: 'palm tree', 'fire_hydrant'), normalised.
QUICKDRAW_CLASSES = tuple(sorted(_names("""
    airplane, alarm_clock, ant, apple, axe, banana, bandage, bat, beach, bear, bee, bench, bicycle,
    bread, bus, butterfly, cactus, cake, camel, campfire, candle, car, castle, cat, chair,
    chandelier, church, couch, cow, crab, crocodilian, cruise ship, cup, dog, dolphin, door, duck,
    eiffel tower, elephant, eyeglasses, fan, feather, fire_hydrant, fish, flower, frog, giraffe,
    guitar, hamburger, hammer, hat, hedgehog, helicopter, horse, hot-air_balloon, hurricane,
    kangaroo, knife, lighthouse, lion, lobster, map, megaphone, monkey, moon, motorcycle, mountain,
    mouse, mushroom, owl, palm tree, parrot, penguin, pickup_truck, pig, pineapple, pizza, rabbit,
    raccoon, rhinoceros, rifle, sailboat, saw, saxophone, scissors, scorpion, sea_turtle, shark,
    sheep, shoe, sink, skateboard, skyscraper, snail, snake, soccer ball, spider, spoon, squirrel,
    swan, teapot, teddy_bear, tiger, train, tree, umbrella, violin, windmill, wine bottle,
    zebra""")))

# The 30 unseen classes (Dey et al., CVPR 2019); the other 80 are seen.
QUICKDRAW_UNSEEN = _names("""
    bat, cow, dolphin, door, giraffe, helicopter, mouse, raccoon, rhinoceros, saw, scissors,
    skyscraper, tree, windmill, feather, campfire, palm tree, fire_hydrant, bread, beach, megaphone,
    cactus, zebra, tiger, shark, frog, banana, cake, hamburger, fan""")


def squash(name: str) -> str:
    """Letters and digits only, lower case: 'bear (animal)' -> 'bearanimal'."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def tuberlin_photo_folder(class_name: str) -> str:
    """The photo folder of a TU-Berlin class as released (the map above, else the squashed name)."""
    c = normalise_class(class_name)
    return TUBERLIN_PHOTO_FOLDERS.get(c, squash(c))


def _check() -> None:
    sizes = {"Sketchy": (SKETCHY_CLASSES, 125), "TU-Berlin": (TUBERLIN_CLASSES, 250),
             "QuickDraw": (QUICKDRAW_CLASSES, 110)}
    for name, (classes, n) in sizes.items():
        assert len(classes) == n, (name, len(classes))
    for unseen, classes, n in ((SKETCHY_ZS1_UNSEEN, SKETCHY_CLASSES, 25),
                               (SKETCHY_ZS2_UNSEEN, SKETCHY_CLASSES, 21),
                               (TUBERLIN_ZS_UNSEEN, TUBERLIN_CLASSES, 30),
                               (TUBERLIN_MASBIR_UNSEEN, TUBERLIN_CLASSES, 30),
                               (QUICKDRAW_UNSEEN, QUICKDRAW_CLASSES, 30)):
        assert len(unseen) == n and set(unseen) <= set(classes), set(unseen) - set(classes)
    assert set(TUBERLIN_PHOTO_FOLDERS) <= set(TUBERLIN_CLASSES)
    folders = [tuberlin_photo_folder(c) for c in TUBERLIN_CLASSES]
    assert len(set(folders)) == len(folders), "two TU-Berlin classes share a photo folder"


_check()
