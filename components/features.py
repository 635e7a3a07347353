"""Feature names, shapes and class names of the Fashion-MNIST data set.

Every other module takes these names from here, so a feature is spelled once.
"""

IMAGE_KEY = "image"
LABEL_KEY = "label"

IMAGE_HEIGHT = 28
IMAGE_WIDTH = 28
IMAGE_PIXELS = IMAGE_HEIGHT * IMAGE_WIDTH
PIXEL_MAX = 255

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"

# File-name prefixes of the data set's own train and test files.
TRAIN_FILE_PREFIX = "train"
EVAL_FILE_PREFIX = "t10k"
