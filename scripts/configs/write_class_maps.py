#!/usr/bin/env python3
"""Write configs/catalog/class_maps/<Dataset>.tsv: for each of the
paper's 17 target datasets, the class names its WebDataset folder carries (in
label order) paired with MLL's own class names, which are the keys of MLL's
caption files (captions/<Dataset>.json) and the names the released reuse.py
puts into its prompts.

Usage:
  scripts/write-class-maps [--reference DIR] [--clip-benchmark DIR] [--out DIR] [--check]

--reference: MLL reference folder with classnames/*.txt and captions/*.json
  (default: ../shared/reference/mll next to the repository).
--clip-benchmark: CLIP_benchmark's clip_benchmark/datasets folder holding
  en_classnames.json (default: /work/ref-src/CLIP_benchmark/clip_benchmark/datasets).
--check: exit 1 if a written file differs from what would be written (for CI).

How each pair is made, in this order: (1) the dataset-side names come from
CLIP_benchmark (en_classnames.json where CLIP_benchmark overrides the names,
else the torchvision/TFDS names its builder keeps, which are MLL's own names,
with Food101's '_' read as ' ' as CLIP_benchmark does); (2) a normalised string
match (case, '_', '-', punctuation and accents ignored); (3) the explicit hand
tables below (GTSRB, MNIST, PCAM, FER2013, Flowers102, Country211); (4) label
order for clevr_closest_object_distance and dmlab, whose MLL names carry no
recoverable meaning (both datasets use the same six folder names). Every map
must be a bijection onto the caption file's keys; the script refuses otherwise.
CLIP_benchmark names clevr_closest_object_distance's class 3 "" (an empty
line); the map calls it "moderately distant", as the catalog does.

The maps are the one source of caption keys: the catalog's target entries name
their map (`class_map`), and a spec's `catalog = "NAME"` dataset gets it.

Standard library only.
"""

import argparse
import json
import re
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# MLL dataset -> where the WebDataset folder's class names come from:
# ("en", key): CLIP_benchmark's en_classnames.json[key];
# ("mll", transform): MLL's own list (same torchvision/TFDS loader, same order).
SOURCES = {
    "CIFAR100": ("mll", "identity"),
    "Country211": ("en", "country211"),
    "DTD": ("mll", "identity"),
    "Food101": ("mll", "underscore_to_space"),
    "MNIST": ("en", "mnist"),
    "OxfordIIITPet": ("en", "pets"),
    "RenderedSST2": ("mll", "identity"),
    "StanfordCars": ("mll", "identity"),
    "STL10": ("mll", "identity"),
    # No CLIP_benchmark copy: the converted folder (CoOp's middle frames) keeps
    # the UCF101 folder names, which are MLL's names.
    "UCF101": ("mll", "identity"),
    "PCAM": ("en", "pcam"),
    "Flowers102": ("en", "flowers"),
    "FER2013": ("en", "fer2013"),
    # TFDS resisc45 label names: the sorted folder names MLL's ImageFolder reads.
    "resisc45": ("mll", "identity"),
    "GTSRB": ("en", "gtsrb"),
    "clevr_closest_object_distance": ("en", "clevr_closest_object_distance"),
    "dmlab": ("en", "dmlab"),
}

# GTSRB: CLIP_benchmark's descriptions are in class-id order 0..42; MLL's names
# are the official sign names (sorted as folder names). Pairs by class id.
GTSRB = [
    "20kph Speed limit", "30kph Speed limit", "50kph Speed limit", "60kph Speed limit", "70kph Speed limit",
    "80kph Speed limit", "End of 80kph speed limit", "100kph Speed limit", "120kph Speed limit", "No passing",
    "No passing for vehicles over 3.5 tons", "Right-of-way at the next intersection", "Priority road", "Yield",
    "Stop", "No vehicles", "Vechiles over 3.5 tons prohibited", "No entry", "General caution",
    "Dangerous curve to the left", "Dangerous curve to the right", "Double curve", "Bumpy road", "Slippery road",
    "Road narrows on the right side", "Road work", "Traffic signals", "Pedestrians", "Children crossing",
    "Bicycles crossing", "Beware of ice or snow", "Wild animals crossing", "End of all speed and passing limits",
    "Turn right ahead", "Turn left ahead", "Ahead only", "Go straight or right", "Go straight or left",
    "Keep right", "Keep left", "Roundabout mandatory", "End of no passing",
    "End of no passing by vehicles over 3.5 tons",
]

HAND = {
    "MNIST": {str(i): f"{i} - {w}" for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])},
    # torchvision PCAM labels 0/1 = no tumour / tumour (MyPCAM names them negative/positive).
    "PCAM": {"lymph node": "negative", "lymph node containing metastatic tumor tissue": "positive"},
    "FER2013": {"disgusted": "disgust", "fearful": "fear", "surprised": "surprise"},
    # CLIP's renamings of Oxford Flowers classes.
    "Flowers102": {"pink and yellow dahlia": "pink-yellow dahlia", "lotus": "lotus lotus", "air plant": "ball moss"},
    # Both lists follow torchvision's Country211 order of ISO codes (my_datasets.py
    # MyCountry211 turns codes into ISO 3166 names); these pairs share an index.
    "Country211": {
        "Aland Islands": "Åland Islands",
        "Bolivia": "Bolivia, Plurinational State of",
        "Bonaire, Saint Eustatius and Saba": "Bonaire, Sint Eustatius and Saba",
        "DR Congo": "Congo, Democratic Republic of the",
        "Cote d'Ivoire": "Côte d'Ivoire",
        "Curacao": "Curaçao",
        "Czech Republic": "Czechia",
        "Falkland Islands": "Falkland Islands (Malvinas)",
        "Faeroe Islands": "Faroe Islands",
        "South Georgia and South Sandwich Is.": "South Georgia and the South Sandwich Islands",
        "Iran": "Iran, Islamic Republic of",
        "Kyrgyz Republic": "Kyrgyzstan",
        "St. Kitts and Nevis": "Saint Kitts and Nevis",
        "North Korea": "Korea, Democratic People's Republic of",
        "South Korea": "Korea, Republic of",
        "Laos": "Lao People's Democratic Republic",
        "St. Lucia": "Saint Lucia",
        "Moldova": "Moldova, Republic of",
        "Saint-Martin": "Saint Martin (French part)",
        "Macedonia": "North Macedonia",
        "Macau": "Macao",
        "Palestine": "Palestine, State of",
        "Reunion": "Réunion",
        "Russia": "Russian Federation",
        "St. Helena": "Saint Helena, Ascension and Tristan da Cunha",
        "Svalbard and Jan Mayen Islands": "Svalbard and Jan Mayen",
        "Sint Maarten": "Sint Maarten (Dutch part)",
        "Syria": "Syrian Arab Republic",
        "Turkey": "Türkiye",
        "Taiwan": "Taiwan, Province of China",
        "Tanzania": "Tanzania, United Republic of",
        "United States": "United States of America",
        "Vatican": "Holy See",
        "Venezuela": "Venezuela, Bolivarian Republic of",
        "British Virgin Islands": "Virgin Islands (British)",
        "United States Virgin Islands": "Virgin Islands (U.S.)",
        "Vietnam": "Viet Nam",
    },
}
HAND["GTSRB"] = None  # by class id, below

# Datasets paired by label order: MLL's names say nothing about the bins.
BY_ORDER = {"clevr_closest_object_distance", "dmlab"}


def norm(s: str) -> str:
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c)).lower().replace("_", " ").replace("-", " ")
    return " ".join(re.sub(r"[^\w\s]", " ", s).split())


def lines(path: Path) -> list:
    return [l.rstrip("\n") for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def pair(name: str, dataset_names: list, mll_names: list, caption_keys: set) -> list:
    """[(label, dataset name, caption key, how)] for one dataset."""
    if name in BY_ORDER:
        if len(dataset_names) != len(mll_names):
            sys.exit(f"{name}: {len(dataset_names)} dataset classes vs {len(mll_names)} MLL classes")
        return [(i, d, m, "label order") for i, (d, m) in enumerate(zip(dataset_names, mll_names))]
    by_norm = {norm(m): m for m in mll_names}
    hand = HAND.get(name) or {}
    rows = []
    for i, d in enumerate(dataset_names):
        if name == "GTSRB":
            rows.append((i, d, GTSRB[i], "hand (class id)"))
        elif d in hand:
            rows.append((i, d, hand[d], "hand"))
        elif d in by_norm:
            rows.append((i, d, by_norm[d], "exact" if by_norm[d] == d else "normalised"))
        elif norm(d) in by_norm:
            rows.append((i, d, by_norm[norm(d)], "exact" if by_norm[norm(d)] == d else "normalised"))
        else:
            sys.exit(f"{name}: class {i} '{d}' has no MLL name; add it to this script's hand table")
    keys = [r[2] for r in rows]
    missing = set(keys) - caption_keys
    if missing:
        sys.exit(f"{name}: {sorted(missing)} are not keys of the caption file")
    if len(set(keys)) != len(keys) or set(keys) != caption_keys:
        sys.exit(f"{name}: the map is not a bijection onto the caption keys "
                 f"(unused keys: {sorted(caption_keys - set(keys))})")
    return rows


def dataset_side(name: str, en: dict, mll_names: list) -> list:
    kind, arg = SOURCES[name]
    if kind == "en":
        names = list(en[arg])
        if name == "clevr_closest_object_distance":
            names = ["moderately distant" if n == "" else n for n in names]
        return names
    if arg == "underscore_to_space":
        return [m.replace("_", " ") for m in mll_names]
    return list(mll_names)


def render(name: str, rows: list) -> str:
    kind, arg = SOURCES[name]
    source = (f"CLIP_benchmark clip_benchmark/datasets/en_classnames.json[\"{arg}\"]" if kind == "en"
              else f"the torchvision/TFDS class names CLIP_benchmark keeps ({arg.replace('_', ' ')} of MLL's list)")
    hows = sorted({r[3] for r in rows})
    out = [
        f"# {name}: the dataset's class names (label order, as its WebDataset folder's classnames.txt",
        "# lists them) -> MLL's class names, the keys of MLL's captions/" + name + ".json.",
        "# Written by scripts/write-class-maps (scripts/configs/write_class_maps.py); edit that script, not this file.",
        f"# Dataset side: {source}.",
        f"# Caption keys: MLL repository (github LAMDASZ-ML/MLL) classnames/{name}.txt and captions/{name}.json.",
        f"# Pairing used here: {', '.join(hows)} (see the script's docstring).",
        "# label\tclass name\tcaption key\thow",
    ]
    for i, d, m, how in rows:
        for s in (d, m):
            if "\t" in s or "\n" in s:
                sys.exit(f"{name}: class name {s!r} holds a tab or newline")
        out.append(f"{i}\t{d}\t{m}\t{how}")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(prog="write-class-maps", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=REPO.parent / "shared" / "reference" / "mll")
    ap.add_argument("--clip-benchmark", type=Path,
                    default=Path("/work/ref-src/CLIP_benchmark/clip_benchmark/datasets"))
    ap.add_argument("--out", type=Path, default=REPO / "configs" / "catalog" / "class_maps")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    en_path = args.clip_benchmark / "en_classnames.json"
    if not en_path.is_file():
        sys.exit(f"{en_path} is missing: give --clip-benchmark (CLIP_benchmark's clip_benchmark/datasets folder)")
    en = json.loads(en_path.read_text(encoding="utf-8"))
    stale = []
    for name in SOURCES:
        mll_names = lines(args.reference / "classnames" / f"{name}.txt")
        caption_keys = set(json.loads((args.reference / "captions" / f"{name}.json").read_text(encoding="utf-8")))
        rows = pair(name, dataset_side(name, en, mll_names), mll_names, caption_keys)
        text = render(name, rows)
        path = args.out / f"{name}.tsv"
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if args.check:
        if stale:
            sys.exit(f"out of date (run scripts/write-class-maps): {', '.join(stale)}")
        print(f"{args.out}: {len(SOURCES)} class maps up to date")
    else:
        print(f"wrote {len(SOURCES)} class maps to {args.out}")


if __name__ == "__main__":
    main()
