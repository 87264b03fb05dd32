"""What the toy world contains: domains, graph concepts (WordNet synsets), sample
dataset styles, target datasets and the model hub with its skills by domain.

Everything here is data; generate.py turns it into files. Changing this file
changes the generator hash, so cached worlds are rebuilt.
"""

DOMAINS = ["animals", "vehicles", "food", "tools", "digits"]

# Graph leaf concepts: (wnid, lemma used in texts, domain).
CONCEPTS = [
    ("n02084071", "dog", "animals"), ("n02121620", "cat", "animals"), ("n02374451", "horse", "animals"),
    ("n02411705", "sheep", "animals"), ("n02395406", "hog", "animals"), ("n02324045", "rabbit", "animals"),
    ("n02503517", "elephant", "animals"), ("n02129165", "lion", "animals"),
    ("n02958343", "car", "vehicles"), ("n02924116", "bus", "vehicles"), ("n04490091", "truck", "vehicles"),
    ("n02834778", "bicycle", "vehicles"), ("n03790512", "motorcycle", "vehicles"), ("n02691156", "airplane", "vehicles"),
    ("n02858304", "boat", "vehicles"), ("n04468005", "train", "vehicles"),
    ("n07739125", "apple", "food"), ("n07753592", "banana", "food"), ("n07747607", "orange", "food"),
    ("n07679356", "bread", "food"), ("n07873807", "pizza", "food"), ("n07850329", "cheese", "food"),
    ("n07730207", "carrot", "food"), ("n07840804", "egg", "food"),
    ("n03481172", "hammer", "tools"), ("n04154565", "screwdriver", "tools"), ("n04606574", "wrench", "tools"),
    ("n03966976", "pliers", "tools"), ("n04140064", "saw", "tools"), ("n03239726", "drill", "tools"),
    ("n02764044", "axe", "tools"), ("n04208210", "shovel", "tools"),
    ("n13742358", "zero", "digits"), ("n13742573", "one", "digits"), ("n13743269", "two", "digits"),
    ("n13744044", "three", "digits"), ("n13744304", "four", "digits"), ("n13744521", "five", "digits"),
    ("n13744722", "six", "digits"), ("n13744916", "seven", "digits"), ("n13745086", "eight", "digits"),
    ("n13745270", "nine", "digits"),
]

# Rendering styles. size = (width, height) of the written files; bg = background
# RGB; desat = how much colour is washed out; noise = pixel noise (0..255 scale);
# clutter = amplitude of the random smooth background field; jitter = placement
# jitter in pixels; scale = shape scale range.
STYLES = {
    "photo": dict(size=(64, 64), bg=(128, 124, 118), desat=0.0, noise=6.0, clutter=18.0, jitter=2, scale=(0.9, 1.1)),
    "sketch": dict(size=(64, 64), bg=(236, 236, 236), desat=0.4, noise=10.0, clutter=8.0, jitter=2, scale=(0.9, 1.1)),
    "cartoon": dict(size=(80, 64), bg=(90, 160, 220), desat=0.0, noise=2.0, clutter=10.0, jitter=2, scale=(0.9, 1.1)),
    "studio": dict(size=(72, 72), bg=(200, 190, 170), desat=0.1, noise=4.0, clutter=12.0, jitter=2, scale=(0.9, 1.1)),
    "street": dict(size=(96, 64), bg=(110, 110, 115), desat=0.1, noise=8.0, clutter=22.0, jitter=2, scale=(0.9, 1.1)),
    "scan": dict(size=(48, 48), bg=(20, 20, 20), desat=0.4, noise=8.0, clutter=6.0, jitter=2, scale=(0.9, 1.1)),
    "market": dict(size=(64, 80), bg=(170, 140, 100), desat=0.0, noise=6.0, clutter=20.0, jitter=2, scale=(0.9, 1.1)),
    "mixed": dict(size=(64, 64), bg=(150, 150, 150), desat=0.2, noise=7.0, clutter=16.0, jitter=2, scale=(0.9, 1.1)),
}

# Sample datasets for the semantic graph: ImageFolder trees named by wnid.
SAMPLE_DATASETS = [("toy-photos", "photo"), ("toy-sketches", "sketch"), ("toy-cartoons", "cartoon")]
SAMPLES_PER_CONCEPT = 14
IMAGES_PER_NODE = 24

TEMPLATES = {
    "default": ["a photo of a {c}.", "a blurry photo of a {c}.", "a close-up photo of a {c}.",
                "a drawing of a {c}.", "itap of a {c}."],
    "digits": ['a photo of the number: "{c}".'],
}

# Target datasets. Each class: (class name, related graph concept lemma, short
# description used in its captions). Class names of ImageFolder datasets are
# folder names, so they have no spaces.
TARGETS = [
    dict(name="toy-pets", domain="animals", format="imagefolder", style="studio", templates="default", classes=[
        ("puppy", "dog", "a young dog"), ("kitten", "cat", "a young domestic cat"),
        ("pony", "horse", "a small breed of horse"), ("lamb", "sheep", "a young sheep"),
        ("piglet", "hog", "a young pig"), ("bunny", "rabbit", "a young rabbit"),
        ("cub", "lion", "a young lion"), ("tusker", "elephant", "an elephant with long tusks"),
    ]),
    dict(name="toy-traffic", domain="vehicles", format="webdataset", style="street", templates="default", classes=[
        ("sedan", "car", "a car with a closed body and four doors"),
        ("school bus", "bus", "a yellow bus that carries children to school"),
        ("pickup truck", "truck", "a light truck with an open cargo bed"),
        ("mountain bike", "bicycle", "a bicycle with wide tyres for rough ground"),
        ("motorbike", "motorcycle", "a motorcycle"), ("jet airliner", "airplane", "a large passenger airplane"),
        ("sailboat", "boat", "a boat propelled by sails"), ("freight train", "train", "a train of cars carrying goods"),
    ]),
    dict(name="toy-digits", domain="digits", format="webdataset", style="scan", templates="digits", classes=[
        (str(i), lemma, f"the handwritten digit {lemma}") for i, lemma in enumerate(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    ]),
    dict(name="toy-groceries", domain="food", format="imagefolder", style="market", templates="default", classes=[
        ("pippin", "apple", "a variety of eating apple"), ("plantain", "banana", "a large cooking banana"),
        ("tangerine", "orange", "a small sweet orange"), ("sourdough", "bread", "a loaf of sour bread"),
        ("calzone", "pizza", "a folded pizza"), ("brie", "cheese", "a soft creamy cheese"),
        ("carrots", "carrot", "orange root vegetables"), ("eggs", "egg", "hen eggs"),
    ]),
    dict(name="toy-mixed", domain="mixed", format="webdataset", style="mixed", templates="default", classes=[
        ("dachshund", "dog", "a small dog with a long body"), ("tabby cat", "cat", "a striped cat"),
        ("stallion", "horse", "an adult male horse"), ("race car", "car", "a fast car built for racing"),
        ("rowboat", "boat", "a small boat moved by oars"), ("baguette", "bread", "a long thin loaf of bread"),
        ("cheddar", "cheese", "a hard yellow cheese"), ("mallet", "hammer", "a hammer with a large head"),
        ("spanner", "wrench", "a wrench for turning nuts"), ("hatchet", "axe", "a small axe with a short handle"),
        ("number 3", "three", "the digit three"), ("number 7", "seven", "the digit seven"),
    ]),
]
TEST_PER_CLASS = 60

# The hub. skill: per-domain resolution in DOMAINS order (1 = sharp, small =
# concepts of that domain collapse together); noise: image-encoder nuisance
# sensitivity; text_noise: error of the text tower. No imagenet_top1 here: the
# generator MEASURES it on the ImageNet analog below and writes it into the spec.
HUB = [
    dict(key="toy-animals/v1", skill=[1.0, .3, .3, .3, .3], size=48, resize="shortest", dim=64,
         params_m=88.0, gflops=4.4),
    dict(key="toy-vehicles/v1", skill=[.3, 1.0, .3, .3, .3], size=48, resize="shortest", dim=64,
         params_m=88.0, gflops=4.4),
    dict(key="toy-food/v1", skill=[.3, .3, 1.0, .3, .3], size=32, resize="shortest", dim=96,
         params_m=40.0, gflops=1.2),
    dict(key="toy-tools/v1", skill=[.3, .3, .3, 1.0, .3], size=32, resize="squash", dim=64,
         params_m=40.0, gflops=1.2),
    dict(key="toy-digits/v1", skill=[.25, .25, .25, .25, 1.0], size=32, resize="shortest", dim=64,
         params_m=25.0, gflops=0.6),
    dict(key="toy-nature/v2", skill=[.85, .3, .85, .3, .3], size=64, resize="shortest", dim=128,
         params_m=150.0, gflops=12.0),
    dict(key="toy-generalist-l/v1", skill=[.62, .62, .62, .62, .62], size=64, resize="shortest", dim=128,
         params_m=430.0, gflops=40.0),
    dict(key="toy-generalist-m/v1", skill=[.5, .5, .5, .5, .5], size=48, resize="shortest", dim=96,
         params_m=150.0, gflops=12.0),
    dict(key="toy-generalist-s/v1", skill=[.4, .4, .4, .4, .4], size=32, resize="shortest", dim=64,
         params_m=60.0, gflops=2.0),
    dict(key="toy-poor/v1", skill=[.15, .15, .15, .15, .15], size=32, resize="shortest", dim=64,
         params_m=20.0, gflops=0.4),
]
# The toy world's ImageNet analog (what INB ranks by): every image of the sample
# datasets (the graph's source, as ImageNet is the real graph's), classified among
# all graph leaf concepts with the CLIP_benchmark protocol; a class's prompts are
# its node's two texts the towers know (node text and definition), see
# generate.measure_imagenet_top1.
IMAGENET_ANALOG_FILE = "imagenet_top1.json"
IMAGE_NOISE = 1.6   # scale of the per-model nuisance projection (tuned once; see docs/toy-world.md)
TEXT_NOISE = 0.08
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
