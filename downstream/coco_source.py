"""COCO-style instance annotations (an `instances_*.json` and its image folder) as labelled images.

Each image becomes a one-frame `LabelledFrames`: its pixels (RGB, as stored), one mask per
instance (polygons, RLE or compressed RLE, decoded by pycocotools' `annToMask` at the image's
size) and one attribute, "class": the instance's category, numbered 0..C-1 in the order of the
category ids (category `values` holds their names). Crowd instances (`iscrowd: 1`) are left
out unless `include_crowd`, as COCO's evaluation leaves them out; images without instances are
kept (their slots match nothing).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pycocotools.coco import COCO

from downstream.labelled_objects import AttributeSpec, LabelledFrames
from tasks.bad_input import BadInputError


class CocoObjects:
    """The images of one COCO instances file as `LabelledFrames` (an `ObjectSource`).

    Args:
        annotation_file: the instances JSON ({images, annotations, categories}).
        image_folder: where the images' `file_name`s are.
        max_images: the first images (by id) only; 0: all.
        include_crowd: keep crowd instances as objects.
    """

    def __init__(self, annotation_file: str | Path, image_folder: str | Path,
                 max_images: int = 0, include_crowd: bool = False):
        if max_images < 0:
            raise ValueError(f"max_images must be >= 0 (0: all), got {max_images}")
        self.annotation_file = Path(annotation_file)
        self.image_folder = Path(image_folder)
        self.include_crowd = include_crowd
        self.coco = _read_coco(self.annotation_file)
        self.category_ids = sorted(self.coco.getCatIds())
        if not self.category_ids:
            raise BadInputError(f"{self.annotation_file}: no categories")
        self.class_of_category = {category: i for i, category in enumerate(self.category_ids)}
        names = tuple(self.coco.cats[category]["name"] for category in self.category_ids)
        self.attribute_specs = (AttributeSpec("class", "category", names),)
        self.sample_ids = sorted(self.coco.getImgIds())
        if max_images:
            self.sample_ids = self.sample_ids[:max_images]

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index: int) -> LabelledFrames:
        image_id = self.sample_ids[index]
        image = self.coco.imgs[image_id]
        path = self.image_folder / image["file_name"]
        pixels = _read_image(path)
        height, width = pixels.shape[:2]
        where = f"{self.annotation_file} image {image_id}"
        if (image.get("height"), image.get("width")) != (height, width):
            raise BadInputError(f"{where}: declares {image.get('height')}x{image.get('width')} "
                                f"(height x width), {path} is {height}x{width}")
        instances = [item for item in self.coco.imgToAnns[image_id]
                     if self.include_crowd or not item.get("iscrowd", 0)]
        masks = np.zeros((len(instances), height, width), dtype=bool)
        classes = []
        for position, item in enumerate(instances):
            if item["category_id"] not in self.class_of_category:
                raise BadInputError(f"{where}: annotation {item.get('id')} has unknown "
                                    f"category_id {item['category_id']}")
            try:
                masks[position] = self.coco.annToMask(item).astype(bool)
            except (KeyError, TypeError, ValueError, IndexError) as error:
                raise BadInputError(f"{where}: annotation {item.get('id')} has a malformed "
                                    f"segmentation ({error!r})") from error
            classes.append(self.class_of_category[item["category_id"]])
        return LabelledFrames(
            sample_id=image_id,
            frames=torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous(),
            object_masks=torch.from_numpy(masks)[None],
            attributes={"class": torch.tensor(classes, dtype=torch.int64).reshape(1, -1)},
        )


def _read_coco(path: Path) -> COCO:
    """A pycocotools COCO index of the file, with a clear error for a bad one."""
    try:
        dataset = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no COCO annotation file at {path}") from None
    except json.JSONDecodeError as error:
        raise BadInputError(f"{path} is not valid JSON: {error}") from error
    missing = {"images", "annotations", "categories"} - set(dataset)
    if missing:
        raise BadInputError(f"{path} is not a COCO instances file: no {sorted(missing)}")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        try:
            coco.createIndex()
        except (KeyError, TypeError) as error:
            raise BadInputError(f"{path}: malformed images/annotations ({error!r})") from error
    return coco


def _read_image(path: Path) -> np.ndarray:
    """`[H,W,3]` uint8 RGB."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except FileNotFoundError:
        raise BadInputError(f"image file {path} is missing") from None
    except (UnidentifiedImageError, OSError) as error:
        raise BadInputError(f"image file {path} cannot be read ({error})") from error
