"""The words a config value may take, in one light module.

Loading and checking a config, and `slic --help`, import this module and nothing heavy (no
torch, cv2, faiss or h5py). The modules that act on a choice import its tuple from here; a
registry keyed by these words (backbones, flow methods) is checked equal to it by a test.
"""

from __future__ import annotations

MADE_DATASETS = ("synthetic",)  # make_dataset.DATASET_MAKERS
DATASET_LAYOUTS = ("ucf101", "hmdb51", "kinetics400", "folder", "synthetic")  # datasets.DATASETS
LABEL_SOURCES = ("auto", "folders", "none")  # data.labels: where a video's class comes from
FLOW_METHOD_NAMES = ("dis", "farneback", "tvl1", "tvl1-opencv")  # flow_methods.FLOW_METHODS
DIS_PRESET_NAMES = ("ultrafast", "fast", "medium")  # flow_methods.DIS_PRESETS
IMAGE_CODECS = ("jpeg", "png", "raw")  # how images are stored in frames.h5 and flow.h5
FRAME_CODECS = ("jpeg", "raw")  # extract-frames: the codecs that suit video frames
FLOW_CHANNELS = ("u", "v", "magnitude", "uvm")  # what a flow clip shows (uvm: all 3)
FLOW_AUGMENT_MODES = ("consistent", "official")  # how augmentation treats flow views
FLOW_CONTRASTS = ("stored", "clip")  # a flow view as stored, or stretched per clip
FLOW_REPLACEMENTS = ("positive", "positive_and_augmented")  # what a flow view replaces
ANCHOR_MODES = ("random", "start")  # where a video's anchor window starts
CROP_COUNTS = (1, 3, 10)  # test crops per window
NEIGHBOUR_SEARCHES = ("exact", "ivf", "hnsw", "auto")  # FINCH's first-neighbour search
CLUSTER_METHODS = ("finch", "kmeans")
EMBEDDED_FEATURES = ("projection", "backbone")  # what an encoder embeds a clip as
AMP_MODES = ("auto", "bf16", "fp16", "off")  # compute.amp
CHANNELS_LAST_MODES = ("auto", "on", "off")  # compute.channels_last
EMBEDDING_PRECISIONS = ("fp32", "amp")  # compute.embedding_precision
PSEUDO_LABEL_SOURCES = ("finch", "kmeans", "none", "labels")
LOGGER_NAMES = ("none", "tensorboard")  # where pretrain also logs its metrics
EXPORT_FORMATS = ("torchvision", "safetensors")  # slic export --format
SYNTHETIC_MOTIONS = ("Slide", "Rise", "Fall", "Spin", "Grow", "Shrink", "Swing", "Bob", "Orbit",
                     "Pulse")  # synthetic.motion.MOTIONS, the classes of the demo data, in order
FLOW_RESOLUTIONS = ("reference", "stored")  # compute_flow.resolution
