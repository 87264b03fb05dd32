#!/usr/bin/env python3
"""Write configs/catalog/datasets.toml, the dataset catalog (docs/operations.md, 2a),
from public facts: the table below (splits, sources, checksums, counts, each
with its source named) plus class names and templates read from
CLIP_benchmark's packaged JSON files and the MLL repository's class lists.

Usage:
  scripts/write-catalog [--clip-benchmark DIR] [--mll-reference DIR] [--out FILE] [--check]

--clip-benchmark: CLIP_benchmark's clip_benchmark/datasets folder
  (en_classnames.json, en_zeroshot_classification_templates.json);
  default /work/ref-src/CLIP_benchmark/clip_benchmark/datasets.
--mll-reference: the MLL reference folder with classnames/<Dataset>.txt
  (default: ../shared/reference/mll next to the repository, else
  /work/shared/reference/mll).
--check: exit 1 if FILE differs from what would be written (for CI).

Standard library only.
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TV = "torchvision 0.28 datasets"  # where URLs and md5 sums were read
HF = "https://huggingface.co/datasets/clip-benchmark"


def url(u, name, checksum=None, note=None):
    d = {"kind": "url", "url": u, "file": name}
    d["checksum"] = checksum or "none published"
    if note:
        d["note"] = note
    return d


def mirror(name, splits):
    return {"kind": "wds_mirror", "url": f"{HF}/wds_{name}/resolve/main", "splits": splits,
            "checksum": "none published"}


def manual(file, how, checksum=None):
    d = {"kind": "manual", "file": file, "note": how}
    if checksum:
        d["checksum"] = checksum
    return d


def ucf101_sources(name, test_list):
    """UCF101's two sources; CoOp's split_zhou_UCF101.json is needed for its test split only."""
    with_list = " with CoOp's split_zhou_UCF101.json inside" if test_list else ""
    return [manual("UCF-101-midframes.zip", "CoOp's UCF-101-midframes folder (github.com/KaiyangZhou/CoOp "
                   f"DATASETS.md) as one zip or folder of <class>/<frame>.jpg{with_list}"),
            manual("UCF-101", "the videos (https://www.crcv.ucf.edu/data/UCF101/UCF101.rar, no checksum "
                   f"published), extracted (`unrar x UCF101.rar`){with_list}: --from-file {name}=UCF-101 takes "
                   "each video's middle frame (PyAV)")]


def tv(cls, split):
    return {"kind": "torchvision", "class": cls, "split": split, "checksum": "md5 inside torchvision"}


# name -> facts. classnames: ("clip", key) CLIP_benchmark en_classnames.json;
# ("mll", transform) the MLL repository's list (torchvision's `.classes`, in
# label order for these datasets). Caption keys are not repeated here: each
# target names its class map (class_maps/<name>.tsv, scripts/write-class-maps),
# the one source of the pairing of class names with MLL's caption keys.
TARGETS = {
    "CIFAR100": dict(
        split="test", path="datasets/wds_cifar100/test", converter="torchvision",
        samples=10000, samples_source="Krizhevsky 2009 / torchvision CIFAR100 docs: 10,000 test images",
        classes=100, classes_source="torchvision CIFAR100 (meta fine_label_names)",
        classnames=("mll", None), templates="cifar100",
        sources=[tv("CIFAR100", "test"),
                 url("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                     "md5:eb9058c3a382ffc7106e4002c42a8d85", f"md5 from {TV}/cifar.py"),
                 mirror("cifar100", ["test"])]),
    "Country211": dict(
        split="valid", path="datasets/wds_country211/valid", converter="torchvision",
        samples=10550, samples_source="OpenAI CLIP data/country211.md: 50 validation images per country x 211",
        classes=211, classes_source="CLIP_benchmark en_classnames.json country211",
        classnames=("clip", "country211"), templates="country211",
        sources=[tv("Country211", "valid"),
                 url("https://openaipublic.azureedge.net/clip/data/country211.tgz", "country211.tgz",
                     "md5:84988d7644798601126c29e9877aab6a", f"md5 from {TV}/country211.py"),
                 mirror("country211", ["valid"])]),
    "DTD": dict(
        split="val", path="datasets/wds_dtd/val", converter="torchvision",
        samples=1880, samples_source="Cimpoi et al. 2014 (DTD): split 1 val = 40 images x 47 classes; torchvision DTD docs",
        classes=47, classes_source="torchvision DTD (sorted folder names)",
        classnames=("mll", None), templates="dtd",
        sources=[tv("DTD", "val"),
                 url("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz", "dtd-r1.0.1.tar.gz",
                     "md5:fff73e5086ae6bdbea199a49dfb8a4c1", f"md5 from {TV}/dtd.py")]),
    "FER2013": dict(
        split="test", path="datasets/wds_fer2013/test", converter="imagefolder_archive",
        samples=7178, samples_source="FER2013 (Goodfellow et al. 2013): PublicTest 3,589 + PrivateTest 3,589; "
        "Kaggle msambare/fer2013 test folder",
        classes=7, classes_source="CLIP_benchmark en_classnames.json fer2013",
        classnames=("clip", "fer2013"), templates="fer2013",
        folder_order=["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
        sources=[manual("fer2013.zip", "Kaggle dataset msambare/fer2013 (`kaggle datasets download -d msambare/fer2013`), "
                        "as CLIP_benchmark's builder does; needs a Kaggle account"),
                 mirror("fer2013", ["test"])]),
    "Flowers102": dict(
        split="test", path="datasets/wds_vtab-flowers/test", converter="flowers102_mat",
        samples=6149, samples_source="Nilsback & Zisserman 2008; torchvision Flowers102 docs: 6,149 test images",
        classes=102, classes_source="CLIP_benchmark en_classnames.json flowers (label order of imagelabels.mat)",
        classnames=("clip", "flowers"), templates="flowers",
        sources=[url("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz", "102flowers.tgz",
                     "md5:52808999861908f626f3c1f4e79d11fa", f"md5 from {TV}/flowers102.py"),
                 url("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat", "imagelabels.mat",
                     "md5:e0620be6f572b9609742df49c70aed4d", f"md5 from {TV}/flowers102.py"),
                 url("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat", "setid.mat",
                     "md5:a5357ecc9cb78c4bef273ce3793fc85c", f"md5 from {TV}/flowers102.py"),
                 mirror("vtab-flowers", ["test"])]),
    "Food101": dict(
        split="test", path="datasets/wds_food101/test", converter="torchvision",
        samples=25250, samples_source="Bossard et al. 2014 (Food-101): 250 test images x 101 classes",
        classes=101, classes_source="torchvision Food101 (meta/classes.txt), '_' as ' ' as CLIP_benchmark's builder",
        classnames=("mll", "underscores"), templates="food101",
        sources=[tv("Food101", "test"),
                 url("http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", "food-101.tar.gz",
                     "md5:85eeb15f3717b99a5da872d97d918f87", f"md5 from {TV}/food101.py"),
                 mirror("food101", ["test"])]),
    "GTSRB": dict(
        split="test", path="datasets/wds_gtsrb/test", converter="gtsrb_csv",
        samples=12630, samples_source="Stallkamp et al. 2012 (GTSRB): 12,630 test images; torchvision GTSRB",
        classes=43, classes_source="CLIP_benchmark en_classnames.json gtsrb (ClassId order)",
        classnames=("clip", "gtsrb"), templates="gtsrb",
        sources=[url("https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/GTSRB_Final_Test_Images.zip",
                     "GTSRB_Final_Test_Images.zip", "md5:c7e4e6327067d32654124b0fe9e82185", f"md5 from {TV}/gtsrb.py"),
                 url("https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/GTSRB_Final_Test_GT.zip",
                     "GTSRB_Final_Test_GT.zip", "md5:fe31e9c9270bbcd7b84b7f21a9d9d9e5", f"md5 from {TV}/gtsrb.py"),
                 mirror("gtsrb", ["test"])]),
    "MNIST": dict(
        split="test", path="datasets/wds_mnist/test", converter="mnist_idx",
        samples=10000, samples_source="LeCun et al. 1998; torchvision MNIST docs: 10,000 test images",
        classes=10, classes_source="CLIP_benchmark en_classnames.json mnist",
        classnames=("clip", "mnist"), templates="mnist",
        sources=[url("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                     "md5:9fb629c4189551a2d022fa330f9573f3", f"md5 from {TV}/mnist.py"),
                 url("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     "md5:ec29112dd5afa0611ce80d1b7f02629c", f"md5 from {TV}/mnist.py"),
                 mirror("mnist", ["test"])]),
    "OxfordIIITPet": dict(
        split="test", path="datasets/wds_vtab-pets/test", converter="torchvision",
        samples=3669, samples_source="Parkhi et al. 2012 (Oxford-IIIT Pet): 3,669 test images; torchvision OxfordIIITPet",
        classes=37, classes_source="CLIP_benchmark en_classnames.json pets",
        classnames=("clip", "pets"), templates="pets",
        sources=[tv("OxfordIIITPet", "test"),
                 url("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", "images.tar.gz",
                     "md5:5c4f3ee8e5d25df40f4fd59a7f44e54c", f"md5 from {TV}/oxford_iiit_pet.py"),
                 mirror("vtab-pets", ["test"])]),
    "PCAM": dict(
        split="test", path="datasets/wds_vtab-pcam/test", converter="pcam_h5",
        samples=32768, samples_source="Veeling et al. 2018 (PatchCamelyon): 32,768 test patches; torchvision PCAM",
        classes=2, classes_source="CLIP_benchmark en_classnames.json pcam",
        classnames=("clip", "pcam"), templates="pcam",
        sources=[manual("camelyonpatch_level_2_split_test_x.h5.gz",
                        "the file with Google Drive id 1qV65ZqZvWzuIVthK8eVDhIwrbnsJdbg_ (Drive downloads need a "
                        f"browser or gdown; md5 from {TV}/pcam.py)", "md5:d8c2d60d490dbd479f8199bdfa0cf6ec"),
                 manual("camelyonpatch_level_2_split_test_y.h5.gz",
                        "the file with Google Drive id 17BHrSrwWKjYsOgTMmoqrIjDy6Fa2o_gP",
                        "md5:60a7035772fbdb7f34eb86d4420cf66a"),
                 mirror("vtab-pcam", ["test"])]),
    "RenderedSST2": dict(
        split="test", path="datasets/wds_renderedsst2/test", converter="torchvision",
        samples=1821, samples_source="OpenAI CLIP data/rendered-sst2.md; torchvision RenderedSST2 docs: 1,821 test images",
        classes=2, classes_source="torchvision RenderedSST2 (negative, positive)",
        classnames=("mll", None), templates="renderedsst2",
        sources=[tv("RenderedSST2", "test"),
                 url("https://openaipublic.azureedge.net/clip/data/rendered-sst2.tgz", "rendered-sst2.tgz",
                     "md5:2384d08e9dcfa4bd55b324e610496ee5", f"md5 from {TV}/rendered_sst2.py"),
                 mirror("renderedsst2", ["test"])]),
    "STL10": dict(
        split="test", path="datasets/wds_stl10/test", converter="torchvision",
        samples=8000, samples_source="Coates et al. 2011 (STL-10): 800 test images x 10 classes",
        classes=10, classes_source="torchvision STL10 (class_names.txt)",
        classnames=("mll", None), templates="stl10",
        sources=[tv("STL10", "test"),
                 url("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
                     "md5:91f7769df0f17e558f3565bffb0c7dfb", f"md5 from {TV}/stl10.py"),
                 mirror("stl10", ["test"])]),
    "StanfordCars": dict(
        split="test", path="datasets/wds_cars/test", converter="torchvision",
        samples=8041, samples_source="Krause et al. 2013 (Stanford Cars): 8,041 test images",
        classes=196, classes_source="torchvision StanfordCars (devkit cars_meta.mat order)",
        classnames=("mll", None), templates="cars",
        sources=[manual("stanford_cars", "the original URL is gone (torchvision disabled its download); put the "
                        "devkit, cars_test/ and cars_test_annos_withlabels.mat in one folder as torchvision's "
                        "StanfordCars expects and pass --from-file StanfordCars=FOLDER"),
                 mirror("cars", ["test"])]),
    # The released MLL code evaluates UCF101 as an ImageFolder over the whole
    # UCF-101-midframes folder (MLL/datasets.json's root, MLL/my_datasets.py's
    # fallback branch): one middle frame of every video. CoOp's test split is
    # kept as UCF101-test (docs/method.md, "The benchmark").
    "UCF101": dict(
        split="all", path="datasets/wds_ucf101/all", converter="ucf101_midframes",
        samples=13320, samples_source="UCF101 (Soomro et al. 2012): 13,320 videos, one middle frame each (the released "
                                      "MLL loader: an ImageFolder over the whole UCF-101-midframes folder)",
        classes=101, classes_source="UCF101 (Soomro et al. 2012) action folders, sorted; '_' as ' ' as CoOp",
        classnames=("mll", "underscores"), templates="ucf101", sources=ucf101_sources("UCF101", test_list=False)),
    "UCF101-test": dict(
        split="test", path="datasets/wds_ucf101/test", converter="ucf101_midframes", same_as="UCF101",
        samples=3783, samples_source="CoOp (Zhou et al. 2022) split_zhou_UCF101.json: 3,783 test videos, one middle frame each",
        classes=101, classes_source="UCF101 (Soomro et al. 2012) action folders, sorted; '_' as ' ' as CoOp",
        classnames=("mll", "underscores"), templates="ucf101", sources=ucf101_sources("UCF101-test", test_list=True)),
    "clevr_closest_object_distance": dict(
        split="test", path="datasets/wds_vtab-clevr_closest_object_distance/test", converter="wds_mirror",
        samples=15000, samples_source="VTAB (Zhai et al. 2019): CLEVR validation set (15,000) as test",
        classes=6, classes_source="CLIP_benchmark en_classnames.json clevr_closest_object_distance "
        "(class 3 is empty there; 'moderately distant' here because classnames.txt cannot hold an empty line)",
        classnames=("clip", "clevr_closest_object_distance"),
        templates="clevr_closest_object_distance",
        sources=[mirror("vtab-clevr_closest_object_distance", ["test"])]),
    "dmlab": dict(
        split="test", path="datasets/wds_vtab-dmlab/test", converter="wds_mirror",
        samples=22735, samples_source="VTAB (Zhai et al. 2019) dmlab test split: 22,735 images",
        classes=6, classes_source="CLIP_benchmark en_classnames.json dmlab",
        classnames=("clip", "dmlab"), templates="dmlab",
        sources=[mirror("vtab-dmlab", ["test"])]),
    "resisc45": dict(
        split="all", path="datasets/wds_vtab-resisc45/all", converter="imagefolder_archive",
        samples=31500, samples_source="Cheng et al. 2017 (NWPU-RESISC45): 700 images x 45 classes, the whole set",
        classes=45, classes_source="tfds resisc45 label names (sorted folder names), as CLIP_benchmark's VTAB builder",
        classnames=("mll", None), templates="resisc45",
        sources=[manual("NWPU-RESISC45.zip", "the whole NWPU-RESISC45 set as <class>/<image>.jpg (the official .rar "
                        "from OneDrive, repacked as zip or given as the extracted folder)"),
                 mirror("vtab-resisc45", ["train", "test"])]),
}

SAMPLES = {
    "imagenet-val": dict(
        samples=50000, samples_source="ILSVRC2012 (Russakovsky et al. 2015): 50,000 validation images",
        classes=1000, classes_source="timm data/_info/imagenet_synsets.txt", wnids="imagenet_synsets.txt",
        converter="imagenet_val", path="graph/samples/imagenet-val",
        sources=[manual("ILSVRC2012_img_val.tar", "image-net.org (account needed) plus the devkit's "
                        "val labels: pass the tar; labels come from LOC_val_solution.csv or ILSVRC2012_devkit_t12.tar.gz "
                        "beside it")]),
    "imagenet-v2": dict(
        samples=10000, samples_source="Recht et al. 2019 (ImageNetV2 matched-frequency): 10 images x 1,000 classes",
        classes=1000, classes_source="timm data/_info/imagenet_synsets.txt (folder i = i-th wnid)",
        wnids="imagenet_synsets.txt", converter="imagenetv2_folders", path="graph/samples/imagenet-v2",
        sources=[url("https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/imagenetv2-matched-frequency.tar.gz",
                     "imagenetv2-matched-frequency.tar.gz", None, "ImageNetV2 repository's README link")]),
    "imagenet-sketch": dict(
        samples=50889, samples_source="Wang et al. 2019 (ImageNet-Sketch): 50,889 images",
        classes=1000, classes_source="timm data/_info/imagenet_synsets.txt", wnids="imagenet_synsets.txt",
        converter="imagefolder_archive", path="graph/samples/imagenet-sketch",
        sources=[manual("ImageNet-Sketch.zip", "github.com/HaohanWang/ImageNet-Sketch (Google Drive or Kaggle)")]),
    "imagenet-a": dict(
        samples=7500, samples_source="Hendrycks et al. 2021 (ImageNet-A): 7,500 images",
        classes=200, classes_source="timm data/_info/imagenet_a_synsets.txt", wnids="imagenet_a_synsets.txt",
        converter="imagefolder_archive", path="graph/samples/imagenet-a",
        sources=[url("https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar", "imagenet-a.tar", None)]),
    "imagenet-r": dict(
        samples=30000, samples_source="Hendrycks et al. 2021 (ImageNet-R): 30,000 images",
        classes=200, classes_source="timm data/_info/imagenet_r_synsets.txt", wnids="imagenet_r_synsets.txt",
        converter="imagefolder_archive", path="graph/samples/imagenet-r",
        sources=[url("https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar", "imagenet-r.tar", None)]),
}

DIGITS = dict(
    split="all", path="datasets/digits/all", converter="sklearn_digits",
    samples=1797, samples_source="scikit-learn load_digits docs: 1,797 samples",
    classes=10, classes_source="scikit-learn load_digits docs: 10 classes (digits 0-9)",
    classnames=[str(i) for i in range(10)], templates="mnist",
    sources=[{"kind": "python", "module": "sklearn.datasets.load_digits", "checksum": "none published",
              "note": "ships inside scikit-learn; no network"}])

UCF101_TEMPLATES = ["a photo of a person doing {c}."]  # CoOp's CUSTOM_TEMPLATES["UCF101"]


def q(s) -> str:
    return json.dumps(s, ensure_ascii=False)


def arr(xs) -> str:
    if len(xs) <= 4:
        return "[" + ", ".join(q(x) for x in xs) + "]"
    return "[\n" + "".join(f"  {q(x)},\n" for x in xs) + "]"


def table(prefix: str, d: dict) -> list[str]:
    out = [f"[[{prefix}]]"]
    for k, v in d.items():
        out.append(f"{k} = {arr(v) if isinstance(v, list) else q(v) if isinstance(v, str) else v}")
    return out


def classnames_of(name, how, clip, mll_dir):
    kind, arg = how
    if kind == "clip":
        names = list(clip[arg])
        if name == "clevr_closest_object_distance":
            names = ["moderately distant" if n == "" else n for n in names]
        return names
    names = (mll_dir / f"{TARGETS.get(name, {}).get('same_as', name)}.txt").read_text().splitlines()
    return [n.replace("_", " ") for n in names] if arg == "underscores" else names


def render(clip_dir: Path, mll_dir: Path) -> str:
    clip = json.loads((clip_dir / "en_classnames.json").read_text())
    templates = json.loads((clip_dir / "en_zeroshot_classification_templates.json").read_text())
    out = ["""\
# The dataset catalog: every dataset the paper's benchmark needs (17 targets, 5
# sample sets for the semantic graph), UCF101-test (CoOp's test split, the
# other reading of UCF101) and `digits`, the smoke-test dataset.
# Generated by scripts/write-catalog (scripts/configs/write_catalog.py); edit that
# script, not this file (`scripts/write-catalog --check` tells if it is stale).
# Read by scripts/prepare-data (downloads, converts, verifies) and by
# mll_common::catalog (a spec's `catalog = "NAME"` on a dataset).
#
# Per dataset: role (target, sample, smoke), MLL's split, path under the data
# root, converter, expected samples and classes with the source of each
# number, class names in label order (source named), templates
# (CLIP_benchmark's en_zeroshot_classification_templates.json unless said),
# MLL's caption file and class map (class_maps/, relative to this file: the
# dataset's class names -> the caption keys), and sources in order of preference. checksum is
# "sha256:...", "md5:..." (torchvision's, the only sums these sources
# publish) or "none published".
""", "version = 1\n"]

    def emit(name, role, f, classnames, tmpl):
        d = {"name": name, "role": role, "split": f.get("split", "test"), "path": f["path"],
             "converter": f["converter"], "samples": f["samples"], "samples_source": f["samples_source"],
             "classes": f["classes"], "classes_source": f["classes_source"]}
        if classnames is not None:
            if len(classnames) != f["classes"]:
                sys.exit(f"{name}: {len(classnames)} class names, expected {f['classes']}")
            d["classnames"] = classnames
        if "wnids" in f:
            d["wnids"] = f["wnids"]
        if "folder_order" in f:
            d["folder_order"] = f["folder_order"]
        if tmpl is not None:
            d["templates"] = tmpl
            d["templates_source"] = ("CoOp CUSTOM_TEMPLATES['UCF101']" if f["templates"] == "ucf101"
                                     else f"CLIP_benchmark en_zeroshot_classification_templates.json {f['templates']}")
        if role == "target":
            # Another split of a dataset shares its captions and class map.
            base = f.get("same_as", name)
            d["captions"] = f"captions/{base}.json"
            d["class_map"] = f"class_maps/{base}.tsv"
        out.extend(table("dataset", d))
        for s in f["sources"]:
            out.extend(table("dataset.sources", s))
        out.append("")

    for name, f in TARGETS.items():
        names = classnames_of(name, f["classnames"], clip, mll_dir)
        tmpl = UCF101_TEMPLATES if f["templates"] == "ucf101" else templates[f["templates"]]
        emit(name, "target", f, names, tmpl)
    for name, f in SAMPLES.items():
        emit(name, "sample", dict(f, split="val" if name == "imagenet-val" else "test"), None, None)
    emit("digits", "smoke", DIGITS, DIGITS["classnames"], templates["mnist"])
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(prog="write-catalog", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip-benchmark", type=Path, default=Path("/work/ref-src/CLIP_benchmark/clip_benchmark/datasets"))
    near = REPO.parent / "shared" / "reference" / "mll"
    ap.add_argument("--mll-reference", type=Path,
                    default=near if near.is_dir() else Path("/work/shared/reference/mll"))
    ap.add_argument("--out", type=Path, default=REPO / "configs" / "catalog" / "datasets.toml")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    text = render(a.clip_benchmark, a.mll_reference / "classnames")
    if a.check:
        if (a.out.read_text() if a.out.exists() else "") != text:
            sys.exit(f"{a.out} is out of date; run scripts/write-catalog")
        print(f"{a.out} is up to date")
        return
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".toml.tmp")
    tmp.write_text(text)
    tmp.replace(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
